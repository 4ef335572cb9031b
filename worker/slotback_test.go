package worker

import (
	"context"
	"testing"
	"time"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

// TestSendsThatDidNotGoGiveTheirSlotBack: with the real limiter, a send that took its slot and
// was then stopped before any sending call (the contact replied; the account cannot send) gives
// the slot back: the account's forecast counts no send for it, and its spacing does not hold the
// next send back. A send that went out keeps its slot.
func TestSendsThatDidNotGoGiveTheirSlotBack(t *testing.T) {
	t.Parallel()
	lim := config.Limits{MinInterval: time.Hour, HourlyCap: 60, DailyCap: 300}
	var sim *wasim.Sim
	var rl *ratelimit.Limiter
	e := newEnv(t, func(c *envConfig) {
		c.noStart = true
		c.provider = func(cl *provider.Client, s *wasim.Sim) Provider { sim = s; return cl }
	})
	rl = ratelimit.New(e.rdb, ratelimit.Options{LimitsFor: func(string) config.Limits { return lim }})
	opts := e.opts
	opts.Limiter = rl
	e.worker = New(e.redisOpt, e.ledger, e.provider, opts)
	ctx := context.Background()
	since := time.Now().Add(-10 * time.Minute)
	if _, err := sim.AddIncomingMessage(chatA1, "No thanks", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetAccountStatus(accB, "CREDENTIALS"); err != nil {
		t.Fatal(err)
	}

	replied := message(newID("gb-replied"), accA, chatA1)
	replied.StopIfRepliedSince = &since
	down := message(newID("gb-down"), accB, chatB1)
	tests := []struct {
		name    string
		req     tasks.SendRequest
		state   tasks.State
		reason  tasks.Reason
		account string
	}{
		{"contact replied", replied, tasks.StateSkipped, tasks.ReasonContactReplied, accA},
		{"account cannot send", down, tasks.StateWaiting, tasks.ReasonWaitAccountDown, accB},
	}
	for _, tc := range tests {
		e.submit(tc.req)
		if err := e.worker.Handler().ProcessTask(ctx, e.releaseTask(tc.req.SendID)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		rec := e.get(tc.req.SendID)
		got := rec.Reason
		if rec.Wait != nil {
			got = rec.Wait.Reason
		}
		if rec.State != tc.state || got != tc.reason {
			t.Fatalf("%s: %s %s, want %s %s", tc.name, rec.State, got, tc.state, tc.reason)
		}
		f, err := rl.Forecast(ctx, tc.account, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if f.SlotsLastHour != 0 || f.SlotsLastDay != 0 || !f.LastSlot.IsZero() {
			t.Fatalf("%s: the forecast counts a send that did not go: %d last hour, %d last day, last slot %v",
				tc.name, f.SlotsLastHour, f.SlotsLastDay, f.LastSlot)
		}
	}

	// The next send of acc-a goes at once (no hour of spacing behind the skipped one), and keeps
	// its slot.
	sent := message(newID("gb-sent"), accA, chatA2)
	e.submit(sent)
	if err := e.worker.Handler().ProcessTask(ctx, e.releaseTask(sent.SendID)); err != nil {
		t.Fatal(err)
	}
	if rec := e.get(sent.SendID); rec.State != tasks.StateSent {
		t.Fatalf("next send: %s %s %+v", rec.State, rec.Reason, rec.Wait)
	}
	if f, err := rl.Forecast(ctx, accA, time.Now()); err != nil || f.SlotsLastHour != 1 {
		t.Fatalf("after a send: %d slots last hour (%v), want 1", f.SlotsLastHour, err)
	}
}

// TestUnresolvedIdentityGivesItsSlotBack: a send that BeginAttempt does not begin because its
// recipient cannot be told apart from an opt-out linked to no one (needs_review
// identity_unresolved) took its slot before the guards, sent nothing, and gives the slot back.
func TestUnresolvedIdentityGivesItsSlotBack(t *testing.T) {
	t.Parallel()
	lim := config.Limits{MinInterval: time.Hour, HourlyCap: 60, DailyCap: 300}
	e := newEnv(t, func(c *envConfig) {
		c.noStart = true
		c.seed = identitySeed
	})
	rl := ratelimit.New(e.rdb, ratelimit.Options{LimitsFor: func(string) config.Limits { return lim }})
	opts := e.opts
	opts.Limiter = rl
	e.worker = New(e.redisOpt, e.ledger, e.provider, opts)
	ctx := context.Background()
	if err := e.ledger.AddOptOut(ctx, lidPersonPhone, "inbound"); err != nil { // linked to no @lid
		t.Fatal(err)
	}
	req := message(newID("gb-unresolved"), accA, loneChat)
	e.submit(req)
	if err := e.worker.Handler().ProcessTask(ctx, e.releaseTask(req.SendID)); err != nil {
		t.Fatal(err)
	}
	if rec := e.get(req.SendID); rec.State != tasks.StateNeedsReview || rec.Reason != tasks.ReasonIdentityUnresolved ||
		len(e.deliveries(req.SendID)) != 0 {
		t.Fatalf("%s %s, %d sending calls", rec.State, rec.Reason, len(e.deliveries(req.SendID)))
	}
	f, err := rl.Forecast(ctx, accA, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if f.SlotsLastHour != 0 || f.SlotsLastDay != 0 || !f.LastSlot.IsZero() {
		t.Fatalf("the forecast counts a send that did not go: %d last hour, %d last day, last slot %v",
			f.SlotsLastHour, f.SlotsLastDay, f.LastSlot)
	}
}
