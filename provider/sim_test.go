package provider_test

// Integration tests: the client against the provider simulator, over real HTTP.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
)

const testKey = "test-api-key"

// harness is a simulator on a free port and a client for it whose read-retry waits are
// recorded instead of slept.
type harness struct {
	srv *wasim.Server
	sim *wasim.Sim
	c   *provider.Client

	mu      sync.Mutex
	waits   []time.Duration
	onSleep func() // runs during a retry wait, e.g. to clear a fault
}

func newHarness(t testing.TB, simOpts wasim.Options, tweak ...func(*provider.Options)) *harness {
	t.Helper()
	if simOpts.Seed == nil {
		simOpts.Seed = wasim.GenerateSeed(2, 3, 1)
	}
	srv, err := wasim.Listen("127.0.0.1:0", simOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Shutdown waits for the handlers still in flight (an injected latency the client
		// gave up on), so that no goroutine outlives the test.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	})
	opts := provider.Options{BaseURL: srv.URL(), APIKey: simOpts.APIKey, Timeout: 5 * time.Second}
	if simOpts.APIKey == "" {
		opts.NoAuth = true
	}
	for _, f := range tweak {
		f(&opts)
	}
	c, err := provider.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{srv: srv, sim: srv.Sim(), c: c}
	provider.SetSleep(c, func(ctx context.Context, d time.Duration) error {
		h.mu.Lock()
		h.waits = append(h.waits, d)
		f := h.onSleep
		h.mu.Unlock()
		if f != nil {
			f()
		}
		return ctx.Err()
	})
	return h
}

func (h *harness) recordedWaits() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.waits...)
}

// requests counts the simulator's requests of one operation, by outcome.
func (h *harness) requests(op string) map[string]int {
	return h.sim.Stats().Requests[op]
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func file(data []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
}

func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func wantClass(t *testing.T, what string, err error, class provider.Class) *provider.Error {
	t.Helper()
	var e *provider.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: want *provider.Error of class %s, got %T %v", what, class, err, err)
	}
	if e.Class != class {
		t.Errorf("%s: class %s, want %s (%v)", what, e.Class, class, err)
	}
	return e
}

func TestSimReads(t *testing.T) {
	h := newHarness(t, wasim.Options{APIKey: testKey})
	ctx := context.Background()

	acc, err := h.c.GetAccount(ctx, "acc-0001")
	if err != nil {
		t.Fatal(err)
	}
	if acc.ID != "acc-0001" || !acc.Healthy() || acc.Status() != provider.StatusOK || acc.Type != "WHATSAPP" || acc.CreatedAt.IsZero() {
		t.Errorf("account: %+v", acc)
	}
	_, err = h.c.GetAccount(ctx, "acc-nope")
	if e := wantClass(t, "unknown account", err, provider.ClassPermanent); e.Status != 404 || provider.SlugOf(err) != provider.SlugResourceNotFound {
		t.Errorf("unknown account: %v", err)
	}

	_, err = h.c.SyncAccount(ctx, "acc-0001", provider.SyncParams{ChunkSize: 100, After: time.Now().Add(-time.Hour)})
	wantClass(t, "sync", err, provider.ClassPermanent)
	if !provider.IsNotImplemented(err) {
		t.Errorf("sync: want not implemented, got %v", err)
	}

	chats, err := h.c.ListChats(ctx, provider.ListChatsParams{AccountID: "acc-0001"})
	if err != nil {
		t.Fatal(err)
	}
	if len(chats.Items) != 3 || chats.Cursor != "" {
		t.Fatalf("chats: %d items, cursor %q", len(chats.Items), chats.Cursor)
	}
	for _, ch := range chats.Items {
		if ch.AccountID != "acc-0001" || ch.AccountType != "WHATSAPP" || ch.Type != provider.ChatSingle || !strings.HasSuffix(ch.AttendeeProviderID, "@s.whatsapp.net") {
			t.Errorf("chat: %+v", ch)
		}
	}

	chat, err := h.c.GetChat(ctx, "chat-0001-00001", "")
	if err != nil {
		t.Fatal(err)
	}
	if chat.ID != "chat-0001-00001" || chat.LastMessage == nil || chat.LastMessage.ChatID != chat.ID {
		t.Errorf("chat: %+v", chat)
	}
	if _, err := h.c.GetChat(ctx, "chat-0001-00001", "acc-0001"); err != nil {
		t.Errorf("chat with account id: %v", err)
	}
	_, err = h.c.GetChat(ctx, "chat/with@odd%chars", "")
	if provider.StatusOf(err) != 404 {
		t.Errorf("escaped unknown chat: %v", err)
	}

	msgs, err := h.c.ListMessages(ctx, "chat-0001-00001", provider.ListMessagesParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs.Items) < 2 {
		t.Fatalf("messages: %+v", msgs)
	}
	for i, m := range msgs.Items {
		if i > 0 && m.Timestamp.After(msgs.Items[i-1].Timestamp.Time) {
			t.Errorf("messages must come newest first")
		}
	}
	oldest := msgs.Items[len(msgs.Items)-1]
	if !oldest.IsSender || oldest.Text == "" {
		t.Errorf("the account wrote first: %+v", oldest)
	}
	// before/after go out in the provider's exact format; the simulator refuses any other.
	older, err := h.c.ListMessages(ctx, "chat-0001-00001", provider.ListMessagesParams{Before: msgs.Items[0].Timestamp.Time})
	if err != nil || len(older.Items) != len(msgs.Items)-1 {
		t.Errorf("before: %v, %d items", err, len(older.Items))
	}
	newer, err := h.c.ListMessages(ctx, "chat-0001-00001", provider.ListMessagesParams{After: oldest.Timestamp.Time})
	if err != nil || len(newer.Items) != len(msgs.Items)-1 {
		t.Errorf("after: %v, %d items", err, len(newer.Items))
	}
	senders, err := h.c.ListMessages(ctx, "chat-0001-00001", provider.ListMessagesParams{SenderID: oldest.SenderID})
	if err != nil || len(senders.Items) == 0 {
		t.Errorf("sender_id: %v", err)
	}

	att, err := h.c.ListAttendees(ctx, "chat-0001-00001", provider.ListAttendeesParams{})
	if err != nil {
		t.Fatal(err)
	}
	if att.Cursor != "" || len(att.Items) == 0 {
		t.Fatalf("attendees: %+v", att)
	}
	found := false
	for _, a := range att.Items {
		found = found || a.ProviderID == "33600000001@s.whatsapp.net"
	}
	if !found {
		t.Errorf("attendees: %+v", att.Items)
	}
}

func TestSimPagination(t *testing.T) {
	h := newHarness(t, wasim.Options{APIKey: testKey, Seed: wasim.GenerateSeed(2, 7, 2)})
	ctx := context.Background()

	var ids []string
	for ch, err := range h.c.Chats(ctx, provider.ListChatsParams{AccountID: "acc-0001", Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ch.ID)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] || !strings.HasPrefix(id, "chat-0001-") {
			t.Errorf("chat %s repeated or foreign", id)
		}
		seen[id] = true
	}
	if len(ids) != 7 || total(h.requests(provider.OpChatsList)) != 4 {
		t.Errorf("%d chats in %d pages; want 7 in 4", len(ids), total(h.requests(provider.OpChatsList)))
	}

	// All accounts at once, no account filter.
	n := 0
	for _, err := range h.c.Chats(ctx, provider.ListChatsParams{Limit: 5}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 14 {
		t.Errorf("all chats: %d, want 14", n)
	}

	const chatID = "chat-0001-00003"
	base := time.Now().Add(-time.Hour)
	for i := range 10 {
		if _, err := h.sim.AddIncomingMessage(chatID, "incoming", base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := h.c.ListMessages(ctx, chatID, provider.ListMessagesParams{})
	if err != nil {
		t.Fatal(err)
	}
	var got []provider.Message
	for m, err := range h.c.Messages(ctx, chatID, provider.ListMessagesParams{Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != len(first.Items) || len(got) < 12 {
		t.Fatalf("messages: %d over pages, %d in one page", len(got), len(first.Items))
	}
	for i := range got {
		if got[i].ID != first.Items[i].ID {
			t.Errorf("page order differs at %d: %s vs %s", i, got[i].ID, first.Items[i].ID)
		}
	}

	// Stopping early fetches no further page.
	before := total(h.requests(provider.OpChatsMessagesList))
	for range h.c.Messages(ctx, chatID, provider.ListMessagesParams{Limit: 3}) {
		break
	}
	if d := total(h.requests(provider.OpChatsMessagesList)) - before; d != 1 {
		t.Errorf("break after the first item made %d requests", d)
	}

	// The attendee list has no cursor: one page, then done.
	na := 0
	for a, err := range h.c.Attendees(ctx, chatID, provider.ListAttendeesParams{}) {
		if err != nil {
			t.Fatal(err)
		}
		if a.ProviderID == "" {
			t.Errorf("attendee: %+v", a)
		}
		na++
	}
	if na == 0 || total(h.requests(provider.OpChatsAttendeesList)) != 1 {
		t.Errorf("%d attendees in %d requests", na, total(h.requests(provider.OpChatsAttendeesList)))
	}

	// An error ends the iteration with that error.
	var last error
	for _, err := range h.c.Messages(ctx, "chat-nope", provider.ListMessagesParams{}) {
		last = err
	}
	if provider.StatusOf(last) != 404 {
		t.Errorf("iterating an unknown chat: %v", last)
	}
}

func TestSimSends(t *testing.T) {
	h := newHarness(t, wasim.Options{APIKey: testKey})
	ctx := context.Background()
	const chatID = "chat-0001-00002"

	files := [][]byte{
		bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 300_000), // 1.2 MB
		[]byte("%PDF-1.7 tiny"),
		{},
	}
	voice := bytes.Repeat([]byte("OggS"), 1000)
	sent, err := h.c.SendMessage(ctx, chatID, provider.SendMessageParams{
		AccountID: "acc-0001",
		Text:      "Here are the documents",
		Attachments: []provider.Attachment{
			{Filename: "photo.png", ContentType: "image/png", Open: file(files[0])},
			{Filename: "devis final.pdf", ContentType: "application/pdf", Open: file(files[1])},
			{Filename: "empty.txt", Open: file(files[2])},
		},
		VoiceMessage:   &provider.Attachment{Filename: "note.ogg", ContentType: "audio/ogg", Open: file(voice)},
		TypingDuration: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sent.MessageID == nil {
		t.Fatalf("sent: %+v", sent)
	}
	ds := h.sim.Deliveries()
	if len(ds) != 1 {
		t.Fatalf("deliveries: %+v", ds)
	}
	d := ds[0]
	if d.Operation != provider.OpChatsMessagesSend || d.ChatID != chatID || d.AccountID != "acc-0001" || d.Text != "Here are the documents" ||
		d.MessageID != *sent.MessageID || d.Outcome != "ok" || len(d.Attachments) != 4 {
		t.Fatalf("delivery: %+v", d)
	}
	wantFiles := []struct {
		field, name, ctype string
		data               []byte
	}{
		{"attachments", "photo.png", "image/png", files[0]},
		{"attachments", "devis final.pdf", "application/pdf", files[1]},
		{"attachments", "empty.txt", "application/octet-stream", files[2]},
		{"voice_message", "note.ogg", "audio/ogg", voice},
	}
	for i, w := range wantFiles {
		a := d.Attachments[i]
		if a.Field != w.field || a.Filename != w.name || a.ContentType != w.ctype || a.Size != int64(len(w.data)) || a.SHA256 != sum(w.data) {
			t.Errorf("attachment %d: %+v, want %s %s %s %d", i, a, w.field, w.name, w.ctype, len(w.data))
		}
	}
	stored, ok := h.sim.Message(*sent.MessageID)
	if !ok || !stored.IsSender || stored.ChatID != chatID || len(stored.Attachments) != 4 {
		t.Errorf("stored: %+v", stored)
	}
	// The new message is visible to reads, as reconciliation needs it.
	page, err := h.c.ListMessages(ctx, chatID, provider.ListMessagesParams{Limit: 1})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != *sent.MessageID || !page.Items[0].IsSender {
		t.Errorf("newest message: %+v %v", page, err)
	}

	// Starting a chat with a contact who has one posts into it.
	started, err := h.c.StartChat(ctx, provider.StartChatParams{
		AccountID: "acc-0001", AttendeeIDs: []string{"33600000001@s.whatsapp.net"}, Text: "Bonjour",
		Attachments: []provider.Attachment{{Filename: "a.txt", ContentType: "text/plain", Open: file([]byte("abc"))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if started.ChatID == nil || *started.ChatID != "chat-0001-00001" || started.MessageID == nil {
		t.Errorf("started: %+v", started)
	}
	// A raw phone number is not a known attendee.
	_, err = h.c.StartChat(ctx, provider.StartChatParams{AccountID: "acc-0001", AttendeeIDs: []string{"+33612345678"}, Text: "cold"})
	wantClass(t, "cold start", err, provider.ClassPermanent)
	if provider.SlugOf(err) != provider.SlugInvalidRecipient || provider.StatusOf(err) != 422 {
		t.Errorf("cold start: %v", err)
	}
	// A chat of another account.
	_, err = h.c.SendMessage(ctx, "chat-0002-00001", provider.SendMessageParams{AccountID: "acc-0001", Text: "x"})
	if provider.SlugOf(err) != provider.SlugAccountMismatch || provider.ClassOf(err) != provider.ClassPermanent {
		t.Errorf("account mismatch: %v", err)
	}
	_, err = h.c.SendMessage(ctx, "chat-nope", provider.SendMessageParams{Text: "x"})
	if provider.StatusOf(err) != 404 || provider.ClassOf(err) != provider.ClassPermanent {
		t.Errorf("unknown chat: %v", err)
	}

	// Reaction, edit and delete of the message just sent.
	id := *sent.MessageID
	if err := h.c.AddReaction(ctx, id, "👍"); err != nil {
		t.Fatal(err)
	}
	if err := h.c.AddReaction(ctx, id, "🎉"); err != nil {
		t.Fatal(err)
	}
	if err := h.c.EditMessage(ctx, id, "Here are the documents (edited)"); err != nil {
		t.Fatal(err)
	}
	m, _ := h.sim.Message(id)
	if m.Text != "Here are the documents (edited)" || !m.Edited || len(m.Reactions) != 1 || m.Reactions[0].Value != "🎉" {
		t.Errorf("after reaction and edit: %+v", m)
	}
	if err := h.c.DeleteMessage(ctx, id); err != nil {
		t.Fatal(err)
	}
	if m, _ := h.sim.Message(id); !m.Deleted {
		t.Errorf("after delete: %+v", m)
	}
	// Out of its window (the seeded message is hours old) an edit answers success and
	// changes nothing: the caller must refuse late edits itself.
	if err := h.c.EditMessage(ctx, "msg-0001-00002-1", "too late"); err != nil {
		t.Errorf("late edit: %v", err)
	}
	ds = h.sim.Deliveries()
	last := ds[len(ds)-1]
	if last.Operation != provider.OpMessagesEdit || last.Outcome != "ok" || last.Applied {
		t.Errorf("late edit delivery: %+v", last)
	}
	// Someone else's message.
	err = h.c.DeleteMessage(ctx, "msg-0001-00002-2")
	if provider.SlugOf(err) != provider.SlugAccountMismatch {
		t.Errorf("delete of a contact's message: %v", err)
	}
	err = h.c.AddReaction(ctx, "msg-nope", "👍")
	if provider.StatusOf(err) != 404 {
		t.Errorf("reaction to unknown message: %v", err)
	}
}

func TestSimDisconnectedAccount(t *testing.T) {
	h := newHarness(t, wasim.Options{APIKey: testKey})
	ctx := context.Background()
	if err := h.sim.SetAccountStatus("acc-0001", provider.StatusCredentials); err != nil {
		t.Fatal(err)
	}
	acc, err := h.c.GetAccount(ctx, "acc-0001")
	if err != nil || acc.Healthy() || acc.Status() != provider.StatusCredentials {
		t.Errorf("account: %+v %v", acc, err)
	}
	// Reads still answer, with stale data.
	if _, err := h.c.ListMessages(ctx, "chat-0001-00001", provider.ListMessagesParams{}); err != nil {
		t.Errorf("read on a disconnected account: %v", err)
	}
	_, err = h.c.SendMessage(ctx, "chat-0001-00001", provider.SendMessageParams{AccountID: "acc-0001", Text: "hi"})
	e := wantClass(t, "send", err, provider.ClassPermanent)
	if e.Status != 401 || provider.SlugOf(err) != provider.SlugDisconnectedAccount || e.Problem.Title == "" {
		t.Errorf("send on a disconnected account: %+v", e)
	}
	ds := h.sim.Deliveries()
	if len(ds) != 1 || ds[0].Applied {
		t.Errorf("deliveries: %+v", ds)
	}
}

func TestSimAPIKeyAuth(t *testing.T) {
	h := newHarness(t, wasim.Options{APIKey: testKey}, func(o *provider.Options) { o.APIKey = "wrong-key" })
	_, err := h.c.GetAccount(context.Background(), "acc-0001")
	e := wantClass(t, "wrong key", err, provider.ClassPermanent)
	if e.Status != 401 || provider.SlugOf(err) != provider.SlugInvalidCredentials {
		t.Errorf("wrong key: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-key") {
		t.Errorf("the key leaked into %q", err)
	}
	h2 := newHarness(t, wasim.Options{APIKey: testKey}, func(o *provider.Options) { o.APIKey, o.NoAuth = "", true })
	_, err = h2.c.GetAccount(context.Background(), "acc-0001")
	if provider.SlugOf(err) != provider.SlugMissingCredentials {
		t.Errorf("no key: %v", err)
	}
	// The development simulator runs without auth.
	h3 := newHarness(t, wasim.Options{})
	if _, err := h3.c.GetAccount(context.Background(), "acc-0001"); err != nil {
		t.Errorf("no auth: %v", err)
	}
}

func TestSimOAuthClientCredentials(t *testing.T) {
	simOpts := wasim.Options{OAuthClients: map[string]string{"sendworker": "s3cret"}, TokenTTL: time.Hour}
	h := newHarness(t, simOpts)
	// The token URL is only known once the simulator listens.
	c, err := provider.New(provider.Options{BaseURL: h.srv.URL(), OAuth: &provider.OAuthOptions{
		TokenURL: h.srv.URL() + "/oauth/token", ClientID: "sendworker", ClientSecret: "s3cret", Scopes: []string{"send"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := c.GetAccount(ctx, "acc-0001")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SendMessage(ctx, "chat-0001-00001", provider.SendMessageParams{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	if n := h.sim.TokensIssued(); n != 1 {
		t.Errorf("21 calls from 20 goroutines fetched %d tokens, want 1 shared", n)
	}

	bad, _ := provider.New(provider.Options{BaseURL: h.srv.URL(), OAuth: &provider.OAuthOptions{
		TokenURL: h.srv.URL() + "/oauth/token", ClientID: "sendworker", ClientSecret: "wrong-s3cret",
	}})
	_, err = bad.SendMessage(ctx, "chat-0001-00001", provider.SendMessageParams{Text: "hi"})
	wantClass(t, "bad client secret", err, provider.ClassPermanent)
	if strings.Contains(err.Error(), "wrong-s3cret") || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("bad client: %v", err)
	}
	if n := len(h.sim.Deliveries()); n != 1 {
		t.Errorf("a send without a token must not reach the provider: %d deliveries", n)
	}

	// A token endpoint that cannot be reached is transient: nothing was sent.
	down, _ := provider.New(provider.Options{BaseURL: h.srv.URL(), OAuth: &provider.OAuthOptions{
		TokenURL: "http://127.0.0.1:1/oauth/token", ClientID: "sendworker", ClientSecret: "s3cret",
	}})
	_, err = down.SendMessage(ctx, "chat-0001-00001", provider.SendMessageParams{Text: "hi"})
	wantClass(t, "token endpoint down", err, provider.ClassTransient)
}

func TestSimOAuthRefreshToken(t *testing.T) {
	h := newHarness(t, wasim.Options{RefreshTokens: []string{"rt-1"}, OAuthClients: map[string]string{"sendworker": "s3cret"}, TokenTTL: 30 * time.Second})
	newClient := func(rt string, early time.Duration) *provider.Client {
		c, err := provider.New(provider.Options{BaseURL: h.srv.URL(), OAuth: &provider.OAuthOptions{
			TokenURL: h.srv.URL() + "/oauth/token", ClientID: "sendworker", ClientSecret: "s3cret", RefreshToken: rt, EarlyExpiry: early,
		}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()

	// Tokens live 30 s; with a 10 s margin the first one serves every call.
	c := newClient("rt-1", 10*time.Second)
	for range 3 {
		if _, err := c.GetAccount(ctx, "acc-0001"); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.sim.TokensIssued(); n != 1 {
		t.Errorf("tokens issued: %d, want 1", n)
	}

	// With a margin longer than the lifetime, every token is "about to expire" as soon as it
	// is issued: each call refreshes first, so no call ever leaves with an expiring token.
	c = newClient("rt-1", time.Minute)
	for range 3 {
		if _, err := c.GetAccount(ctx, "acc-0001"); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.sim.TokensIssued(); n != 4 {
		t.Errorf("tokens issued: %d, want 1+3 (refreshed before expiry on each call)", n)
	}

	_, err := newClient("rt-unknown", 0).GetAccount(ctx, "acc-0001")
	wantClass(t, "unknown refresh token", err, provider.ClassPermanent)
	if !strings.Contains(err.Error(), "invalid_grant") || strings.Contains(err.Error(), "rt-unknown") {
		t.Errorf("unknown refresh token: %v", err)
	}
}

func TestSimFaultsOnReads(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		faults wasim.Faults
		class  provider.Class
		status int
	}{
		{"500", wasim.Faults{Error500Rate: 1}, provider.ClassTransient, 500},
		{"503", wasim.Faults{Error503Rate: 1}, provider.ClassTransient, 503},
		{"429", wasim.Faults{RateLimitRate: 1}, provider.ClassRateLimited, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, wasim.Options{APIKey: testKey, Faults: tc.faults})
			_, err := h.c.GetAccount(ctx, "acc-0001")
			if e := wantClass(t, "read", err, tc.class); e.Status != tc.status || e.Problem == nil {
				t.Errorf("read: %+v", e)
			}
			if n := total(h.requests(provider.OpAccountsGet)); n != 3 {
				t.Errorf("a read is tried 1+2 times, got %d", n)
			}
			// The retries recover once the fault clears.
			h.onSleep = func() { h.sim.SetFaults(wasim.Faults{}) }
			h.sim.SetFaults(tc.faults)
			if _, err := h.c.GetAccount(ctx, "acc-0001"); err != nil {
				t.Errorf("read after the fault cleared: %v", err)
			}
		})
	}

	// Latency beyond the client's timeout: a read times out, transient, and is retried.
	h := newHarness(t, wasim.Options{APIKey: testKey, Faults: wasim.Faults{LatencyMin: 500 * time.Millisecond}},
		func(o *provider.Options) { o.Timeout = 100 * time.Millisecond; o.ReadRetries = 1 })
	_, err := h.c.ListChats(ctx, provider.ListChatsParams{})
	if e := wantClass(t, "slow read", err, provider.ClassTransient); !errors.Is(err, context.DeadlineExceeded) || e.Status != 0 {
		t.Errorf("slow read: %v", err)
	}
	if w := h.recordedWaits(); len(w) != 1 {
		t.Errorf("waits: %v", w)
	}
}

func TestSimRateLimitRetryAfter(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, wasim.Options{APIKey: testKey, Faults: wasim.Faults{RateLimitRate: 1, RetryAfter: 1500 * time.Millisecond}})
	_, err := h.c.GetChat(ctx, "chat-0001-00001", "")
	e := wantClass(t, "read", err, provider.ClassRateLimited)
	if e.RetryAfter != 2*time.Second || provider.RetryAfterOf(err) != 2*time.Second || provider.SlugOf(err) != provider.SlugTooManyRequests {
		t.Errorf("Retry-After (1.5 s rounded up to whole seconds): %v", e.RetryAfter)
	}
	if w := h.recordedWaits(); len(w) != 2 || w[0] != 2*time.Second || w[1] != 2*time.Second {
		t.Errorf("reads wait what the provider asks: %v", w)
	}

	_, err = h.c.SendMessage(ctx, "chat-0001-00001", provider.SendMessageParams{Text: "hi"})
	if e := wantClass(t, "send", err, provider.ClassRateLimited); e.RetryAfter != 2*time.Second {
		t.Errorf("send: %+v", e)
	}
	if ds := h.sim.Deliveries(); len(ds) != 1 || ds[0].Outcome != "error_429" || ds[0].Applied {
		t.Errorf("a rate-limited send is made once and not applied: %+v", ds)
	}
	if w := h.recordedWaits(); len(w) != 2 {
		t.Errorf("a send never waits inside the client: %v", w)
	}

	h2 := newHarness(t, wasim.Options{APIKey: testKey, Faults: wasim.Faults{RateLimitRate: 1}})
	_, err = h2.c.GetChat(ctx, "chat-0001-00001", "")
	if e := wantClass(t, "read", err, provider.ClassRateLimited); e.RetryAfter != 0 {
		t.Errorf("no Retry-After: %v", e.RetryAfter)
	}
	if w := h2.recordedWaits(); len(w) != 2 || w[0] <= 0 || w[0] > time.Second {
		t.Errorf("without Retry-After the client backs off briefly: %v", w)
	}
}

// recentSeed is GenerateSeed(2, 3, 1) where the account's first message in chat-0001-00003
// is two minutes old, inside WhatsApp's edit window.
func recentSeed() *wasim.Seed {
	seed := wasim.GenerateSeed(2, 3, 1)
	seed.Accounts[0].Chats[2].Messages[0].Ago = "2m"
	return seed
}

// sendAll makes each of the five sending calls once, on fresh targets (with recentSeed).
func sendAll(ctx context.Context, c *provider.Client) map[string]error {
	return map[string]error{
		provider.OpChatsMessagesSend: func() error {
			_, err := c.SendMessage(ctx, "chat-0001-00001", provider.SendMessageParams{
				Text: "hello", Attachments: []provider.Attachment{{Filename: "a.txt", Open: file([]byte("abc"))}},
			})
			return err
		}(),
		provider.OpChatsCreate: func() error {
			_, err := c.StartChat(ctx, provider.StartChatParams{AccountID: "acc-0001", AttendeeIDs: []string{"33600000002@s.whatsapp.net"}, Text: "hi"})
			return err
		}(),
		provider.OpMessagesReaction: c.AddReaction(ctx, "msg-0001-00001-2", "👍"),
		provider.OpMessagesEdit:     c.EditMessage(ctx, "msg-0001-00003-1", "edited"),
		provider.OpMessagesDelete:   c.DeleteMessage(ctx, "msg-0001-00001-1"),
	}
}

func TestSimFaultsOnSends(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		faults  wasim.Faults
		class   provider.Class
		status  int
		outcome string
		applied bool
	}{
		{"500", wasim.Faults{Error500Rate: 1}, provider.ClassUnknownOutcome, 500, "error_500", false},
		{"503", wasim.Faults{Error503Rate: 1}, provider.ClassTransient, 503, "error_503", false},
		{"429", wasim.Faults{RateLimitRate: 1, RetryAfter: time.Second}, provider.ClassRateLimited, 429, "error_429", false},
		{"504 stored", wasim.Faults{Error504Rate: 1}, provider.ClassUnknownOutcome, 504, "504", true},
		{"accept then drop", wasim.Faults{AcceptThenDropRate: 1}, provider.ClassUnknownOutcome, 0, "dropped", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, wasim.Options{APIKey: testKey, Faults: tc.faults, Seed: recentSeed()})
			for op, err := range sendAll(ctx, h.c) {
				e := wantClass(t, op, err, tc.class)
				if e.Op != op || e.Status != tc.status {
					t.Errorf("%s: %+v", op, e)
				}
			}
			ds := h.sim.Deliveries()
			if len(ds) != 5 {
				t.Fatalf("5 sending calls must make exactly 5 requests, got %d: %+v", len(ds), ds)
			}
			for _, d := range ds {
				if d.Outcome != tc.outcome || d.Applied != tc.applied {
					t.Errorf("%s: outcome %q applied %v, want %q %v", d.Operation, d.Outcome, d.Applied, tc.outcome, tc.applied)
				}
			}
			if len(h.recordedWaits()) != 0 {
				t.Errorf("sending calls never wait to retry: %v", h.recordedWaits())
			}
			if !tc.applied {
				return
			}
			// The message went out: reconciliation finds it among our own newest messages.
			page, err := h.c.ListMessages(ctx, "chat-0001-00001", provider.ListMessagesParams{Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if m := page.Items[0]; !m.IsSender || m.Text != "hello" || m.ID != ds[0].MessageID {
				t.Errorf("reconciliation sees %+v, delivery %+v", m, ds[0])
			}
		})
	}

	// Latency beyond the timeout on a send: the request was written, the answer never came.
	h := newHarness(t, wasim.Options{APIKey: testKey, Faults: wasim.Faults{LatencyMin: 500 * time.Millisecond}},
		func(o *provider.Options) { o.Timeout = 100 * time.Millisecond })
	for op, err := range sendAll(ctx, h.c) {
		if e := wantClass(t, op, err, provider.ClassUnknownOutcome); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v", op, e)
		}
	}
	// Whether the simulator still applies a call its client gave up on depends on whether it
	// noticed the disconnection: exactly what the client cannot know, hence unknown outcome.
}

func TestSimMixedFaultsNeverDuplicate(t *testing.T) {
	// Under a mix of every fault, each sending call reaches the provider exactly once, and
	// every error is classified; reads may be retried.
	h := newHarness(t, wasim.Options{APIKey: testKey, Faults: wasim.Faults{
		Error500Rate: 0.15, Error503Rate: 0.15, RateLimitRate: 0.15, Error504Rate: 0.15, AcceptThenDropRate: 0.15,
	}})
	ctx := context.Background()
	counts := map[provider.Class]int{}
	const sends = 40
	for i := range sends {
		_, err := h.c.SendMessage(ctx, "chat-0002-00001", provider.SendMessageParams{Text: "n" + string(rune('a'+i%26))})
		if err != nil {
			counts[provider.ClassOf(err)]++
		}
	}
	if n := len(h.sim.Deliveries()); n != sends {
		t.Errorf("%d sends made %d requests", sends, n)
	}
	for _, d := range h.sim.Deliveries() {
		if (d.Outcome == "ok" || d.Outcome == "504" || d.Outcome == "dropped") != d.Applied {
			t.Errorf("delivery %+v", d)
		}
	}
	t.Logf("error classes over %d sends: %v", sends, counts)
	var reads int
	for range 20 {
		if _, err := h.c.GetAccount(ctx, "acc-0002"); err == nil {
			reads++
		}
	}
	if reads == 0 {
		t.Errorf("no read got through retries")
	}
}
