package wasim_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"

	"github.com/sendworker/sendworker/provider/wasim"
)

// A test starts the simulator on a free port, sends through it over real HTTP and checks what
// the "provider" received.
func ExampleListen() {
	srv, err := wasim.Listen("127.0.0.1:0", wasim.Options{APIKey: "dev-key", Seed: wasim.DemoSeed()})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	var body bytes.Buffer
	form := multipart.NewWriter(&body)
	_ = form.WriteField("account_id", "acc-paris")
	_ = form.WriteField("text", "Parfait, à jeudi !")
	_ = form.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/api/v1/chats/chat-paris-camille/messages", &body)
	req.Header.Set("Content-Type", form.FormDataContentType())
	req.Header.Set("X-API-KEY", "dev-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	fmt.Println(resp.StatusCode)
	for _, d := range srv.Sim().Deliveries() {
		fmt.Println(d.Seq, d.Operation, d.ChatID, d.Outcome, d.Text)
	}
	// Output:
	// 201
	// 1 chats_messages_send chat-paris-camille ok Parfait, à jeudi !
}

// Faults are plain data: a chaos test turns them on and off while clients run.
func ExampleSim_SetFaults() {
	sim, err := wasim.New(wasim.Options{})
	if err != nil {
		panic(err)
	}
	sim.SetFaults(wasim.Faults{RateLimitRate: 0.2, RetryAfter: 2e9, AcceptThenDropRate: 0.05})
	fmt.Printf("%+v\n", sim.Faults())
	// Output:
	// {LatencyMin:0s LatencyMax:0s Error500Rate:0 Error503Rate:0 RateLimitRate:0.2 RetryAfter:2s Error504Rate:0 AcceptThenDropRate:0.05 LateStoreRate:0 LateStoreDelay:0s ClockOffset:0s}
}
