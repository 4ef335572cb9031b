package webhook_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/sendworker/sendworker/webhook"
)

// A receiver checks each request with Verify on the raw body, then dedupes on the delivery id.
func ExampleVerify() {
	secret := []byte("webhook-secret-0123456789")
	seen := map[string]bool{}
	handle := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "not authenticated", http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(webhook.HeaderDelivery)
		if seen[id] {
			fmt.Println("duplicate", id)
			return
		}
		seen[id] = true
		fmt.Println("accepted", id, r.Header.Get(webhook.HeaderEvent))
	}

	// What the dispatcher sends.
	body := `{"send_id":"s-1","state":"sent"}`
	send := func(delivery string, sign bool) int {
		ts := time.Now().Unix()
		r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
		r.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
		r.Header.Set(webhook.HeaderDelivery, delivery)
		r.Header.Set(webhook.HeaderEvent, webhook.EventResult)
		sig := webhook.Sign(secret, ts, "1764750000000-0", webhook.EventResult, []byte(body))
		if sign {
			sig = webhook.Sign(secret, ts, delivery, webhook.EventResult, []byte(body))
		}
		r.Header.Set(webhook.HeaderSignature, sig)
		w := httptest.NewRecorder()
		handle(w, r)
		return w.Code
	}
	send("1764750000000-0", true)
	send("1764750000000-0", true)               // a retry: same delivery id
	fmt.Println(send("1764750000001-0", false)) // a replay with a fresh id but the old signature
	// Output:
	// accepted 1764750000000-0 send.result
	// duplicate 1764750000000-0
	// 401
}
