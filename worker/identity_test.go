package worker

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

// The people of the identity tests, each a contact of acc-a with a single chat.
const (
	lidChat   = "chat-lid"   // listed under @lid; its provider_id is the phone form (linked)
	phoneChat = "chat-phone" // listed under the phone form; its provider_id is the @lid (linked)
	loneChat  = "chat-lone"  // listed under @lid only: nothing links it to a phone id

	lidPersonLID   = "100000000001@lid"
	lidPersonPhone = "33681000001@s.whatsapp.net"
	phPersonPhone  = "33681000002@s.whatsapp.net"
	phPersonLID    = "100000000002@lid"
	lonePersonLID  = "100000000003@lid"
)

func identitySeed(s *wasim.Seed) {
	a := &s.Accounts[0]
	a.Contacts = append(a.Contacts,
		wasim.SeedContact{ID: "att-lid", ProviderID: lidPersonLID, OtherID: lidPersonPhone, Name: "Lina"},
		wasim.SeedContact{ID: "att-phone", ProviderID: phPersonPhone, OtherID: phPersonLID, Name: "Paul"},
		wasim.SeedContact{ID: "att-lone", ProviderID: lonePersonLID, Name: "Lou"},
	)
	for _, c := range []struct{ id, pid string }{{lidChat, lidPersonLID}, {phoneChat, phPersonPhone}, {loneChat, lonePersonLID}} {
		a.Chats = append(a.Chats, wasim.SeedChat{ID: c.id, Type: 0, Attendees: []string{c.pid},
			Messages: []wasim.SeedMessage{{ID: "m-" + c.id, Text: "hello", Ago: "1h"}}})
	}
}

func create(id, account string, attendees ...string) tasks.SendRequest {
	return tasks.SendRequest{SendID: id, Operation: tasks.OpCreateChat, AccountID: account, AttendeeIDs: attendees,
		Text: "Following up on our call [" + id + "]"}
}

// TestOnePersonTwoIDs: a chat listed under @lid and a request naming the person's phone form
// (and the reverse) pass the warm check and reach that chat; an opt-out stored under one form
// blocks sends addressed with the other, through the chat id or the attendee id, with no
// sending call.
func TestOnePersonTwoIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.seed = identitySeed })

	// Warm check across forms: sent, into the chat listed under the other form.
	warm := []struct {
		name     string
		attendee string
		chat     string
	}{
		{"phone form of a chat listed under @lid", lidPersonPhone, lidChat},
		{"@lid of a chat listed under the phone form", phPersonLID, phoneChat},
	}
	for _, w := range warm {
		id := newID("warm")
		e.submit(create(id, accA, w.attendee))
		rec := e.waitTerminal(id, 10*time.Second)
		if rec.State != tasks.StateSent || rec.Result.ChatID != w.chat || applied(e.deliveries(id)) != 1 {
			t.Fatalf("%s: %s %s chat %q: %s", w.name, rec.State, rec.Reason, rec.Result.ChatID, historyString(rec))
		}
	}

	// Opt-outs under one form; sends addressed with the other (or by chat id) are skipped.
	ctx := t.Context()
	if err := e.ledger.AddOptOut(ctx, lidPersonPhone, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.AddOptOut(ctx, phPersonLID, "admin"); err != nil {
		t.Fatal(err)
	}
	blocked := []struct {
		name string
		req  tasks.SendRequest
	}{
		{"message into the @lid chat, opted out by phone", message(newID("opt"), accA, lidChat)},
		{"create by @lid, opted out by phone", create(newID("opt"), accA, lidPersonLID)},
		{"create by phone, opted out by phone", create(newID("opt"), accA, lidPersonPhone)},
		{"message into the phone chat, opted out by @lid", message(newID("opt"), accA, phoneChat)},
		{"create by phone, opted out by @lid", create(newID("opt"), accA, phPersonPhone)},
	}
	for _, b := range blocked {
		e.submit(b.req)
		rec := e.waitTerminal(b.req.SendID, 10*time.Second)
		if rec.State != tasks.StateSkipped || rec.Reason != tasks.ReasonOptedOut || len(e.deliveries(b.req.SendID)) != 0 {
			t.Fatalf("%s: %s %s, %d sending calls: %s", b.name, rec.State, rec.Reason, len(e.deliveries(b.req.SendID)), historyString(rec))
		}
	}
}

// TestUnlinkedOptOutFailsClosed: a chat known only under @lid, while an opt-out under a phone
// id is linked to no one: the opt-out check cannot rule the contact out, so the send waits for
// a human (needs_review identity_unresolved), with no sending call. Once the provider's data
// links that phone id to a person, the opt-out covers them, and the others send again.
func TestUnlinkedOptOutFailsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.seed = identitySeed })
	ctx := t.Context()
	if err := e.ledger.AddOptOut(ctx, lidPersonPhone, "inbound"); err != nil { // not linked yet
		t.Fatal(err)
	}
	lone := newID("lone")
	e.submit(message(lone, accA, loneChat))
	rec := e.waitTerminal(lone, 10*time.Second)
	if rec.State != tasks.StateNeedsReview || rec.Reason != tasks.ReasonIdentityUnresolved || len(e.deliveries(lone)) != 0 {
		t.Fatalf("lone: %s %s, %d sending calls: %s", rec.State, rec.Reason, len(e.deliveries(lone)), historyString(rec))
	}
	// A send to the person the opt-out is theirs: the guard sees both forms, links them, and
	// BeginAttempt's re-check finds the opt-out under the @lid form.
	lina := newID("lina")
	e.submit(message(lina, accA, lidChat))
	rec = e.waitTerminal(lina, 10*time.Second)
	if rec.State != tasks.StateSkipped || rec.Reason != tasks.ReasonOptedOut || len(e.deliveries(lina)) != 0 {
		t.Fatalf("lina: %s %s: %s", rec.State, rec.Reason, historyString(rec))
	}
	if n := e.rdb.SCard(ctx, e.ledger.Keys().OptOutUnlinked("phone")).Val(); n != 0 {
		t.Fatalf("%d unlinked phone opt-outs left after the link", n)
	}
	// Nothing unlinked is left: the lone contact sends.
	again := newID("lone")
	e.submit(message(again, accA, loneChat))
	if rec := e.waitTerminal(again, 10*time.Second); rec.State != tasks.StateSent {
		t.Fatalf("lone again: %s %s: %s", rec.State, rec.Reason, historyString(rec))
	}
}

// TestChatCapabilityGuards: a read-only chat (read_only 2) and a chat whose disabledFeatures
// lists reactions are refused before any sending call, each with its own reason.
func TestChatCapabilityGuards(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.seed = func(s *wasim.Seed) {
			for i := range s.Accounts[0].Chats {
				switch ch := &s.Accounts[0].Chats[i]; ch.ID {
				case chatA1:
					ch.DisabledFeatures = []string{"reactions"}
				case chatA2:
					ch.ReadOnly = 2
				}
			}
		}
	})
	cases := []struct {
		name   string
		req    tasks.SendRequest
		reason tasks.Reason
	}{
		{"message into a read-only chat", message(newID("ro"), accA, chatA2), tasks.ReasonChatReadOnly},
		{"create into a read-only chat", create(newID("ro"), accA, c2), tasks.ReasonChatReadOnly},
		{"reaction in a read-only chat", tasks.SendRequest{SendID: newID("ro"), Operation: tasks.OpReaction, AccountID: accA,
			ChatID: chatA2, MessageID: "m-a2-2", Reaction: "👍"}, tasks.ReasonChatReadOnly},
		{"reaction where reactions are disabled", tasks.SendRequest{SendID: newID("nr"), Operation: tasks.OpReaction, AccountID: accA,
			ChatID: chatA1, MessageID: msgIncoming, Reaction: "👍"}, tasks.ReasonFeatureDisabled},
	}
	for _, c := range cases {
		e.submit(c.req)
	}
	for _, c := range cases {
		rec := e.waitTerminal(c.req.SendID, 10*time.Second)
		if rec.State != tasks.StateSkipped || rec.Reason != c.reason {
			t.Errorf("%s: %s %s: %s", c.name, rec.State, rec.Reason, historyString(rec))
		}
	}
	if n := len(e.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d sending calls, want 0", n)
	}
	// A message in the chat with reactions disabled still goes out.
	ok := newID("ok")
	e.submit(message(ok, accA, chatA1))
	if rec := e.waitTerminal(ok, 10*time.Second); rec.State != tasks.StateSent {
		t.Fatalf("message: %s %s", rec.State, rec.Reason)
	}
}

// TestAccountLevelErrorsOpenBreaker: each of the provider's account-level answers to sending
// calls (wasim's SetAccountError; accounts_get keeps saying OK) opens the account's breaker
// after DisconnectTrips of them, like 401 disconnected_account always did; the sends wait
// (account_unhealthy), none fails, and they go out once the account answers again.
func TestAccountLevelErrorsOpenBreaker(t *testing.T) {
	t.Parallel()
	types := wasim.AccountErrorTypes()
	account := func(i int) string { return fmt.Sprintf("acc-err%d", i) }
	e := newEnv(t, func(c *envConfig) {
		c.noStart = true
		c.seed = func(s *wasim.Seed) {
			for i := range types {
				pid := fmt.Sprintf("3369900000%02d@s.whatsapp.net", i)
				s.Accounts = append(s.Accounts, wasim.SeedAccount{
					ID: account(i), Name: "Err", PhoneNumber: fmt.Sprintf("337555002%02d", i),
					Contacts: []wasim.SeedContact{{ID: fmt.Sprintf("att-err%d", i), ProviderID: pid, Name: "E"}},
					Chats: []wasim.SeedChat{{ID: fmt.Sprintf("chat-err%d", i), Type: 0, Attendees: []string{pid},
						Messages: []wasim.SeedMessage{{ID: fmt.Sprintf("m-err%d", i), Text: "hi", Ago: "1h"}}}},
				})
			}
		}
	})
	sends := map[string][]string{}
	for i, slug := range types {
		if err := e.sim.Sim().SetAccountError(account(i), slug); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			id := newID(slug)
			e.submit(message(id, account(i), fmt.Sprintf("chat-err%d", i)))
			sends[slug] = append(sends[slug], id)
		}
	}
	e.start()
	for i, slug := range types {
		waitUntil(t, 15*time.Second, "the breaker of "+slug, func() bool { return len(e.breakerEvents(account(i))) == 1 })
		ev := e.breakerEvents(account(i))[0]
		if ev.Type != results.EventAccountBreakerOpen || ev.Status != slug {
			t.Fatalf("%s: event %+v", slug, ev)
		}
		refused := 0
		for _, d := range e.sim.Sim().Deliveries() {
			if d.AccountID == account(i) {
				refused++
			}
		}
		if refused < DisconnectTrips {
			t.Fatalf("%s: the breaker opened after %d refusals, want %d", slug, refused, DisconnectTrips)
		}
		for _, id := range sends[slug] {
			if rec := e.get(id); rec.State.Terminal() {
				t.Fatalf("%s: send %s ended %s %s: an account-level refusal must not end a send", slug, id, rec.State, rec.Reason)
			}
		}
		if !provider.IsAccountLevel(slug) {
			t.Fatalf("%s is not account-level in the provider's vocabulary", slug)
		}
	}
	for i := range types {
		if err := e.sim.Sim().SetAccountError(account(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	for slug, ids := range sends {
		for _, id := range ids {
			if rec := e.waitTerminal(id, 20*time.Second); rec.State != tasks.StateSent {
				t.Fatalf("%s: %s ended %s %s: %s", slug, id, rec.State, rec.Reason, historyString(rec))
			}
		}
	}
}

// raceProvider adds an opt-out through the ledger the first time the messages of a chat are
// read: after the worker's identity check, before the attempt starts.
type raceProvider struct {
	*provider.Client
	chat  string
	optIn func()
	once  sync.Once
}

func (r *raceProvider) Messages(ctx context.Context, chatID string, p provider.ListMessagesParams) iter.Seq2[provider.Message, error] {
	if chatID == r.chat {
		r.once.Do(r.optIn)
	}
	return r.Client.Messages(ctx, chatID, p)
}

// TestUnlinkedOptOutDuringGuards: a contact known only under @lid; an opt-out under a phone id
// that nothing links arrives while the guards read the provider, before the attempt starts:
// BeginAttempt, which checks the identity atomically with the attempt's start, does not begin
// the send, with no sending call; a human decides (needs_review identity_unresolved), as when
// that opt-out was there before.
func TestUnlinkedOptOutDuringGuards(t *testing.T) {
	t.Parallel()
	var e *env
	e = newEnv(t, func(c *envConfig) {
		c.seed = identitySeed
		c.provider = func(cl *provider.Client, _ *wasim.Sim) Provider {
			return &raceProvider{Client: cl, chat: loneChat, optIn: func() {
				if err := e.ledger.AddOptOut(context.Background(), "33681999999@s.whatsapp.net", "inbound"); err != nil {
					t.Error(err)
				}
			}}
		}
	})
	id := newID("race")
	req := message(id, accA, loneChat)
	since := time.Now().Add(-time.Minute)
	req.StopIfRepliedSince = &since
	e.submit(req)
	rec := e.waitTerminal(id, 10*time.Second)
	if rec.State != tasks.StateNeedsReview || rec.Reason != tasks.ReasonIdentityUnresolved || len(e.deliveries(id)) != 0 {
		t.Fatalf("%s %s, %d sending calls: %s", rec.State, rec.Reason, len(e.deliveries(id)), historyString(rec))
	}
}
