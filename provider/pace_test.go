package provider_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
)

// recorder is a Pacer and an Observer that record their calls.
type recorder struct {
	mu        sync.Mutex
	paces     int
	exchanges []provider.Exchange
	paceErr   error
}

func (r *recorder) pace(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paces++
	if r.paceErr != nil {
		return r.paceErr
	}
	return ctx.Err()
}

func (r *recorder) observe(x provider.Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exchanges = append(r.exchanges, x)
}

// take returns the paces and exchanges recorded since the last take, and forgets them.
func (r *recorder) take() (int, []provider.Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, xs := r.paces, r.exchanges
	r.paces, r.exchanges = 0, nil
	return n, xs
}

func withRecorder(r *recorder) func(*provider.Options) {
	return func(o *provider.Options) { o.Pacer, o.Observer = r.pace, r.observe }
}

// TestPacerAndObserver: every request to the API waits for the Pacer first (each page of a
// listing, each retry of a read, a sending call) and is observed once with its operation and
// status; a sending call whose context says WithoutPacing is observed but not paced.
func TestPacerAndObserver(t *testing.T) {
	rec := &recorder{}
	h := newHarness(t, wasim.Options{APIKey: testKey, Seed: wasim.GenerateSeed(2, 7, 2)}, withRecorder(rec))
	ctx := context.Background()

	wantExchanges := func(what string, xs []provider.Exchange, op string, status int, n int) {
		t.Helper()
		if len(xs) != n {
			t.Fatalf("%s: %d exchanges, want %d: %+v", what, len(xs), n, xs)
		}
		for _, x := range xs {
			if x.Op != op || x.Status != status || x.Duration <= 0 {
				t.Errorf("%s: exchange %+v, want %s %d", what, x, op, status)
			}
			if (status >= 400) != (x.Err != nil) {
				t.Errorf("%s: exchange error %v with status %d", what, x.Err, x.Status)
			}
		}
	}

	if _, err := h.c.GetAccount(ctx, "acc-0001"); err != nil {
		t.Fatal(err)
	}
	paces, xs := rec.take()
	if paces != 1 {
		t.Errorf("accounts_get: %d paces, want 1", paces)
	}
	wantExchanges("accounts_get", xs, provider.OpAccountsGet, 200, 1)

	// 7 chats, 2 a page: 4 requests, each paced.
	n := 0
	for _, err := range h.c.Chats(ctx, provider.ListChatsParams{AccountID: "acc-0001", Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	paces, xs = rec.take()
	if n != 7 || paces != 4 || total(h.requests(provider.OpChatsList)) != 4 {
		t.Errorf("chats: %d in %d requests with %d paces; want 7 in 4 with 4", n, total(h.requests(provider.OpChatsList)), paces)
	}
	wantExchanges("chats_list", xs, provider.OpChatsList, 200, 4)

	// A read tried 1+2 times: three paces, three exchanges.
	h.sim.SetFaults(wasim.Faults{Error503Rate: 1})
	_, err := h.c.GetChat(ctx, "chat-0001-00001", "")
	wantClass(t, "503 read", err, provider.ClassTransient)
	h.sim.SetFaults(wasim.Faults{})
	paces, xs = rec.take()
	if paces != 3 {
		t.Errorf("retried read: %d paces, want 3", paces)
	}
	wantExchanges("retried chats_get", xs, provider.OpChatsGet, 503, 3)
	for _, x := range xs {
		if x.Err == nil || x.Err.Class != provider.ClassTransient {
			t.Errorf("retried read: exchange error %v", x.Err)
		}
	}

	// A sending call is paced, unless its context says it waited already.
	if _, err := h.c.SendMessage(ctx, "chat-0001-00001", provider.SendMessageParams{Text: "paced"}); err != nil {
		t.Fatal(err)
	}
	paces, xs = rec.take()
	if paces != 1 {
		t.Errorf("send: %d paces, want 1", paces)
	}
	wantExchanges("send", xs, provider.OpChatsMessagesSend, 201, 1)
	if _, err := h.c.SendMessage(provider.WithoutPacing(ctx), "chat-0001-00001", provider.SendMessageParams{Text: "not paced"}); err != nil {
		t.Fatal(err)
	}
	paces, xs = rec.take()
	if paces != 0 {
		t.Errorf("send WithoutPacing: %d paces, want 0", paces)
	}
	wantExchanges("send WithoutPacing", xs, provider.OpChatsMessagesSend, 201, 1)
}

// TestPacerError: a Pacer that fails stops the call before anything is sent, with an *Error
// (transient) wrapping a *PaceError; a read is not retried, nothing is observed. A context
// that ends during the wait is reported the same way, its cause kept.
func TestPacerError(t *testing.T) {
	down := errors.New("redis down")
	rec := &recorder{paceErr: down}
	h := newHarness(t, wasim.Options{APIKey: testKey}, withRecorder(rec))

	calls := []struct {
		op   string
		call func(ctx context.Context) error
	}{
		{provider.OpAccountsGet, func(ctx context.Context) error { _, err := h.c.GetAccount(ctx, "acc-0001"); return err }},
		{provider.OpChatsList, func(ctx context.Context) error {
			for _, err := range h.c.Chats(ctx, provider.ListChatsParams{}) {
				return err
			}
			return nil
		}},
		{provider.OpChatsMessagesSend, func(ctx context.Context) error {
			_, err := h.c.SendMessage(ctx, "chat-0001-00001", provider.SendMessageParams{Text: "hi"})
			return err
		}},
	}
	for _, c := range calls {
		err := c.call(context.Background())
		e := wantClass(t, c.op, err, provider.ClassTransient)
		var pe *provider.PaceError
		if !errors.As(err, &pe) || !errors.Is(err, down) || e.Op != c.op || e.Status != 0 {
			t.Errorf("%s: %v, want a PaceError of %v", c.op, err, down)
		}
		paces, xs := rec.take()
		if paces != 1 || len(xs) != 0 {
			t.Errorf("%s: %d paces, %d exchanges; want 1 and none", c.op, paces, len(xs))
		}
		if n := total(h.requests(c.op)); n != 0 {
			t.Errorf("%s: %d requests reached the provider", c.op, n)
		}
	}
	if len(h.recordedWaits()) != 0 {
		t.Errorf("a pacing failure was retried: %v", h.recordedWaits())
	}

	// The context ends during the wait: the pacer's error keeps its cause.
	ctx, cancel := context.WithCancel(context.Background())
	hc := newHarness(t, wasim.Options{APIKey: testKey}, func(o *provider.Options) {
		o.Pacer = func(ctx context.Context) error {
			cancel()
			<-ctx.Done()
			return context.Cause(ctx)
		}
	})
	_, err := hc.c.GetAccount(ctx, "acc-0001")
	var pe *provider.PaceError
	if !errors.As(err, &pe) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled while pacing: %v", err)
	}
	if n := total(hc.requests(provider.OpAccountsGet)); n != 0 {
		t.Errorf("cancelled while pacing: %d requests", n)
	}
}

// TestPacerSkipsTokens: the token endpoint's requests are not paced, only the API's.
func TestPacerSkipsTokens(t *testing.T) {
	rec := &recorder{}
	simOpts := wasim.Options{OAuthClients: map[string]string{"sendworker": "s3cret"}, TokenTTL: time.Hour}
	h := newHarness(t, simOpts)
	c, err := provider.New(provider.Options{BaseURL: h.srv.URL(), Pacer: rec.pace, Observer: rec.observe,
		OAuth: &provider.OAuthOptions{TokenURL: h.srv.URL() + "/oauth/token", ClientID: "sendworker", ClientSecret: "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.GetAccount(context.Background(), "acc-0001"); err != nil {
			t.Fatal(err)
		}
	}
	paces, xs := rec.take()
	if h.sim.TokensIssued() != 1 || paces != 2 || len(xs) != 2 {
		t.Errorf("%d tokens, %d paces, %d exchanges; want 1, 2, 2", h.sim.TokensIssued(), paces, len(xs))
	}
}
