package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendworker/sendworker/provider"
)

// TestObserveProviderWithClient drives every call of the real provider
// client with ObserveProvider as its observer: each of the 11 operations gets
// its series in both metrics, nothing lands in "other", and no id of the
// calls shows up in any label.
func TestObserveProviderWithClient(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.EscapedPath())
		mu.Unlock()
		// 400 is permanent for every operation: exactly one request per call.
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"type":"errors/invalid_parameters","title":"bad","status":400}`))
	}))
	t.Cleanup(srv.Close)

	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	pc, err := provider.New(provider.Options{
		BaseURL:     srv.URL + "/tenant",
		APIKey:      "k",
		ReadRetries: -1,
		Observer:    m.ObserveProvider,
	})
	if err != nil {
		t.Fatal(err)
	}
	const (
		accountID = "acc/secret@x"
		chatID    = "api/v1-chat-secret"
		messageID = "msg/secret"
		attendee  = "att-secret"
	)
	ctx := context.Background()
	calls := map[string]func() error{
		provider.OpAccountsGet: func() error { _, err := pc.GetAccount(ctx, accountID); return err },
		provider.OpAccountsSync: func() error {
			_, err := pc.SyncAccount(ctx, accountID, provider.SyncParams{})
			return err
		},
		provider.OpChatsList: func() error { _, err := pc.ListChats(ctx, provider.ListChatsParams{}); return err },
		provider.OpChatsGet:  func() error { _, err := pc.GetChat(ctx, chatID, accountID); return err },
		provider.OpChatsMessagesList: func() error {
			_, err := pc.ListMessages(ctx, chatID, provider.ListMessagesParams{})
			return err
		},
		provider.OpChatsAttendeesList: func() error {
			_, err := pc.ListAttendees(ctx, chatID, provider.ListAttendeesParams{})
			return err
		},
		provider.OpChatsMessagesSend: func() error {
			_, err := pc.SendMessage(ctx, chatID, provider.SendMessageParams{Text: "hello"})
			return err
		},
		provider.OpChatsCreate: func() error {
			_, err := pc.StartChat(ctx, provider.StartChatParams{AccountID: accountID, AttendeeIDs: []string{attendee}, Text: "hello"})
			return err
		},
		provider.OpMessagesReaction: func() error { return pc.AddReaction(ctx, messageID, "👍") },
		provider.OpMessagesEdit:     func() error { return pc.EditMessage(ctx, messageID, "edited") },
		provider.OpMessagesDelete:   func() error { return pc.DeleteMessage(ctx, messageID) },
	}
	if len(calls) != 11 {
		t.Fatalf("%d calls, want the 11 operations", len(calls))
	}
	for op, call := range calls {
		var pe *provider.Error
		if err := call(); !errors.As(err, &pe) || pe.Status != http.StatusBadRequest {
			t.Fatalf("%s: got %v, want the server's 400", op, err)
		}
		if pe.Op != op {
			t.Fatalf("call for %s made %s", op, pe.Op)
		}
	}

	const name = "sendworker_provider_request_duration_seconds"
	for op := range calls {
		if s := mustSeries(t, reg, name, lbl("operation", op, "status", "400")); s.count != 1 {
			t.Errorf("%s: %d observations, want 1", op, s.count)
		}
	}
	if _, ok := series(t, reg, name, lbl("operation", other, "status", "400")); ok {
		t.Errorf("a client call was labelled %q; requests: %v", other, seen)
	}
	for op := range calls {
		if v := mustSeries(t, reg, "sendworker_provider_errors_total", lbl("operation", op, "class", "permanent")).value; v != 1 {
			t.Errorf("%s: %v errors counted, want 1", op, v)
		}
	}
	for _, v := range labelValues(t, reg) {
		if strings.Contains(v, "secret") || strings.Contains(v, "/") {
			t.Errorf("label value %q comes from a request path", v)
		}
	}
}

// TestObserveProviderErrorStatuses: a request cut by the client's timeout is
// labelled timeout, a refused connection error; both count as transient errors.
func TestObserveProviderErrorStatuses(t *testing.T) {
	// A server that never answers: the client's timeout cuts the request.
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) })

	// An address nobody listens on: the connection is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	_ = ln.Close()

	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	client := func(base string) *provider.Client {
		pc, err := provider.New(provider.Options{
			BaseURL: base, APIKey: "k", ReadRetries: -1, Timeout: 100 * time.Millisecond,
			Observer: m.ObserveProvider,
		})
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	ctx := context.Background()
	if _, err := client(hung.URL).GetChat(ctx, "c1", ""); err == nil {
		t.Fatal("hung server: no error")
	}
	if err := client(refused).DeleteMessage(ctx, "m1"); err == nil {
		t.Fatal("refused connection: no error")
	}

	const name = "sendworker_provider_request_duration_seconds"
	s := mustSeries(t, reg, name, lbl("operation", provider.OpChatsGet, "status", "timeout"))
	if s.count != 1 || s.sum < 0.09 {
		t.Errorf("timeout: count %d sum %v, want 1 observation of about the 100ms timeout", s.count, s.sum)
	}
	if s := mustSeries(t, reg, name, lbl("operation", provider.OpMessagesDelete, "status", "error")); s.count != 1 {
		t.Errorf("refused: count %d, want 1", s.count)
	}
	for _, op := range []string{provider.OpChatsGet, provider.OpMessagesDelete} {
		if v := mustSeries(t, reg, "sendworker_provider_errors_total", lbl("operation", op, "class", "transient")).value; v != 1 {
			t.Errorf("%s: %v errors counted, want 1", op, v)
		}
	}
}
