package provider_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
)

// A client against the simulator: check the account, send, read the message back.
func Example() {
	srv, err := wasim.Listen("127.0.0.1:0", wasim.Options{APIKey: "demo-key", Seed: wasim.GenerateSeed(1, 1, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	c, err := provider.New(provider.Options{BaseURL: srv.URL(), APIKey: "demo-key"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	acc, err := c.GetAccount(ctx, "acc-0001")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(acc.ID, acc.Status(), acc.Healthy())

	sent, err := c.SendMessage(ctx, "chat-0001-00001", provider.SendMessageParams{Text: "Hello again", TypingDuration: time.Second})
	if err != nil {
		log.Fatal(err)
	}
	page, err := c.ListMessages(ctx, "chat-0001-00001", provider.ListMessagesParams{Limit: 1})
	if err != nil {
		log.Fatal(err)
	}
	newest := page.Items[0]
	fmt.Println(newest.ID == *sent.MessageID, newest.Text, bool(newest.IsSender))
	// Output:
	// acc-0001 OK true
	// true Hello again true
}

// How a worker decides what to do after a sending call fails: one switch over the class.
func ExampleClassOf() {
	srv, err := wasim.Listen("127.0.0.1:0", wasim.Options{
		Seed:   wasim.GenerateSeed(1, 1, 1),
		Faults: wasim.Faults{Error504Rate: 1}, // the message is stored, then the answer is a 504
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	c, err := provider.New(provider.Options{BaseURL: srv.URL(), NoAuth: true})
	if err != nil {
		log.Fatal(err)
	}

	_, err = c.SendMessage(context.Background(), "chat-0001-00001", provider.SendMessageParams{Text: "Hello"})
	switch provider.ClassOf(err) {
	case provider.ClassUnknownOutcome:
		fmt.Println("maybe delivered: reconcile against the chat before any retry")
	case provider.ClassRateLimited:
		fmt.Println("wait", provider.RetryAfterOf(err), "then retry; not a failure")
	case provider.ClassTransient:
		fmt.Println("not delivered: retry later")
	default:
		fmt.Println("refused:", provider.SlugOf(err))
	}
	fmt.Println(err)
	// Output:
	// maybe delivered: reconcile against the chat before any retry
	// provider: chats_messages_send POST /api/v1/chats/chat-0001-00001/messages: 504 request_timeout (Request timeout) [unknown_outcome]
}
