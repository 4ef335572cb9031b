package worker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

// fakeLimiter answers ReserveSlot with answer (n: the how-many-th call for that send) and
// records the optional calls.
type fakeLimiter struct {
	answer func(rec *tasks.Record, now time.Time, n int) ratelimit.Slot

	mu        sync.Mutex
	calls     map[string]int
	cancels   []string
	penalties map[string]time.Time
	globals   atomic.Int64
	globalErr error // WaitGlobal's answer; set before the test's first task
}

func newFakeLimiter(answer func(rec *tasks.Record, now time.Time, n int) ratelimit.Slot) *fakeLimiter {
	return &fakeLimiter{answer: answer, calls: map[string]int{}, penalties: map[string]time.Time{}}
}

// Refund frees only a slot still in the future, as Cancel does: this fake does not track
// consumed slots.
func (f *fakeLimiter) Refund(ctx context.Context, rec *tasks.Record) (bool, error) {
	return f.Cancel(ctx, rec)
}

func (f *fakeLimiter) ReserveSlot(_ context.Context, rec *tasks.Record, now time.Time) (ratelimit.Slot, error) {
	f.mu.Lock()
	f.calls[rec.SendID]++
	n := f.calls[rec.SendID]
	f.mu.Unlock()
	return f.answer(rec, now, n), nil
}

func (f *fakeLimiter) Cancel(_ context.Context, rec *tasks.Record) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, rec.SendID)
	return true, nil
}

func (f *fakeLimiter) Penalize(_ context.Context, account string, until time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.penalties[account] = until
	return nil
}

func (f *fakeLimiter) WaitGlobal(context.Context) error {
	f.globals.Add(1)
	return f.globalErr
}

func (f *fakeLimiter) canceled() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cancels...)
}

// TestLimiterFirst: the rate-limit slot is taken before any provider read. A send whose slot is
// far waits for it (rate_limit, the binding limit in the detail) without a single provider
// read; one whose slot is near does its reads, waits in the worker and sends at its slot; a
// guard that skips a send holding a slot releases it; every provider request waits for the
// global rate (the sending call before BeginAttempt).
func TestLimiterFirst(t *testing.T) {
	t.Parallel()

	t.Run("far slot: no provider read", func(t *testing.T) {
		t.Parallel()
		var slotAt time.Time
		fl := newFakeLimiter(func(_ *tasks.Record, now time.Time, _ int) ratelimit.Slot {
			slotAt = now.Add(time.Hour)
			return ratelimit.Slot{At: slotAt, Held: true, Binding: ratelimit.BindDailyCap}
		})
		e, counter := newCountingEnv(t, fl)
		id := newID("far")
		e.submit(message(id, accA, chatA1))
		if err := e.worker.Handler().ProcessTask(context.Background(), e.releaseTask(id)); err != nil {
			t.Fatal(err)
		}
		rec := e.get(id)
		if rec.State != tasks.StateWaiting || rec.Wait == nil || rec.Wait.Reason != tasks.ReasonWaitRateLimit {
			t.Fatalf("%s %+v", rec.State, rec.Wait)
		}
		// It comes back SlotLead before its slot, to read the provider then.
		if want := slotAt.Add(-DefaultSlotLead); !rec.Wait.Until.Equal(want.Truncate(time.Millisecond)) {
			t.Fatalf("waits until %s, want %s", rec.Wait.Until, want)
		}
		if n := counter.reads.Load(); n != 0 {
			t.Fatalf("%d provider reads for a send waiting for its slot", n)
		}
		if n := fl.globals.Load(); n != 0 {
			t.Fatalf("%d global waits", n)
		}
		logs := e.logs.FilterMessage("send waits").FilterField(zapString("send_id", id)).All()
		if len(logs) != 1 || !strings.HasPrefix(logs[0].ContextMap()["detail"].(string), "rate_limit: daily_cap until ") {
			t.Fatalf("wait logs: %+v", logs)
		}
	})

	t.Run("near slot: reads, then sends at the slot", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		var slotAt time.Time
		fl := newFakeLimiter(func(_ *tasks.Record, now time.Time, n int) ratelimit.Slot {
			mu.Lock()
			defer mu.Unlock()
			if n == 1 {
				slotAt = now.Add(300 * time.Millisecond)
			}
			if now.Before(slotAt) {
				return ratelimit.Slot{At: slotAt, Held: true, Binding: ratelimit.BindReserved}
			}
			return ratelimit.Slot{At: slotAt, Go: true, Binding: ratelimit.BindReserved}
		})
		e, counter := newCountingEnv(t, fl)
		id := newID("near")
		e.submit(message(id, accA, chatA1))
		if err := e.worker.Handler().ProcessTask(context.Background(), e.releaseTask(id)); err != nil {
			t.Fatal(err)
		}
		rec := e.get(id)
		ds := e.deliveries(id)
		if rec.State != tasks.StateSent || len(ds) != 1 {
			t.Fatalf("%s %s, %d deliveries", rec.State, rec.Reason, len(ds))
		}
		mu.Lock()
		at := slotAt
		mu.Unlock()
		if ds[0].At.Before(at) {
			t.Fatalf("delivered at %s, before its slot %s", ds[0].At, at)
		}
		if late := ds[0].At.Sub(at); late > 200*time.Millisecond {
			t.Errorf("delivered %s after its slot", late)
		}
		// accounts_get and chats_get, each after a global wait, and one more for the sending call.
		if reads, globals := counter.reads.Load(), fl.globals.Load(); reads != 2 || globals != reads+1 {
			t.Fatalf("%d reads, %d global waits", reads, globals)
		}
		if c := fl.canceled(); len(c) != 0 {
			t.Fatalf("slots canceled: %v", c)
		}
	})

	t.Run("guard skips a send holding a slot: slot released", func(t *testing.T) {
		t.Parallel()
		fl := newFakeLimiter(func(_ *tasks.Record, now time.Time, _ int) ratelimit.Slot {
			return ratelimit.Slot{At: now.Add(100 * time.Millisecond), Held: true, Binding: ratelimit.BindMinInterval}
		})
		e := newEnv(t, func(c *envConfig) { c.noStart = true; c.opts.Limiter = fl })
		id := newID("mismatch")
		e.submit(message(id, accA, chatB1)) // acc-b's chat
		if err := e.worker.Handler().ProcessTask(context.Background(), e.releaseTask(id)); err != nil {
			t.Fatal(err)
		}
		if rec := e.get(id); rec.State != tasks.StateSkipped || rec.Reason != tasks.ReasonAccountMismatch {
			t.Fatalf("%s %s", rec.State, rec.Reason)
		}
		if c := fl.canceled(); len(c) != 1 || c[0] != id {
			t.Fatalf("canceled %v, want [%s]", c, id)
		}
	})

	t.Run("provider 429 penalizes the account", func(t *testing.T) {
		t.Parallel()
		fl := newFakeLimiter(func(_ *tasks.Record, now time.Time, _ int) ratelimit.Slot {
			return ratelimit.Slot{At: now, Go: true, Binding: ratelimit.BindNone}
		})
		e := newEnv(t, func(c *envConfig) {
			c.noStart = true
			c.opts.Limiter = fl
			c.provider = func(cl *provider.Client, s *wasim.Sim) Provider {
				return &faultyProvider{Client: cl, sim: s, faults: wasim.Faults{RateLimitRate: 1, RetryAfter: 2 * time.Second}, left: 1}
			}
		})
		id := newID("penalty")
		e.submit(message(id, accA, chatA1))
		before := time.Now()
		if err := e.worker.Handler().ProcessTask(context.Background(), e.releaseTask(id)); err != nil {
			t.Fatal(err)
		}
		rec := e.get(id)
		if rec.State != tasks.StateWaiting || rec.Wait.Reason != tasks.ReasonWaitProvider {
			t.Fatalf("%s %+v", rec.State, rec.Wait)
		}
		fl.mu.Lock()
		until, ok := fl.penalties[accA]
		fl.mu.Unlock()
		if !ok || until.Before(before.Add(2*time.Second)) || until.After(time.Now().Add(2*time.Second)) {
			t.Fatalf("penalty %v (set %v), want about 2s from now", until, ok)
		}
	})
}

// TestGlobalRateUnavailable: when the wait for the global request rate fails, the provider
// client makes no request (the read comes back as a *provider.PaceError) and the send is tried
// again in 5 s, without a wait or a failure recorded.
func TestGlobalRateUnavailable(t *testing.T) {
	t.Parallel()
	fl := newFakeLimiter(func(_ *tasks.Record, now time.Time, _ int) ratelimit.Slot {
		return ratelimit.Slot{At: now, Go: true}
	})
	fl.globalErr = errors.New("redis down")
	e, counter := newCountingEnv(t, fl)
	id := newID("global-down")
	e.submit(message(id, accA, chatA1))
	err := e.worker.Handler().ProcessTask(context.Background(), e.releaseTask(id))
	var re *retryError
	if !errors.As(err, &re) || re.delay != 5*time.Second || !strings.Contains(re.why, "global provider rate: redis down") {
		t.Fatalf("ProcessTask: %v, want a retry in 5s for the global rate", err)
	}
	if reads, globals := counter.reads.Load(), fl.globals.Load(); reads != 1 || globals != 1 {
		t.Errorf("%d reads asked, %d global waits; want 1 and 1", reads, globals)
	}
	if n := len(e.sim.Sim().Stats().Requests[provider.OpAccountsGet]); n != 0 {
		t.Errorf("the provider saw accounts_get: %v", e.sim.Sim().Stats().Requests)
	}
	if rec := e.get(id); rec.State != tasks.StateApproved {
		t.Errorf("state %s %s, want approved", rec.State, rec.Reason)
	}
}

// TestSlotDeliveredAtItsSlot: with a real clock and SlotLead, sends deferred for their slots
// reach the provider at their slots (within scheduling noise), not up to the outbox and asynq
// pick-up delays after them.
func TestSlotDeliveredAtItsSlot(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	slots := map[string]time.Time{}
	fl := newFakeLimiter(func(rec *tasks.Record, now time.Time, _ int) ratelimit.Slot {
		mu.Lock()
		defer mu.Unlock()
		at, ok := slots[rec.SendID]
		if !ok {
			at = now.Add(1500 * time.Millisecond)
			slots[rec.SendID] = at
		}
		if now.Before(at) {
			return ratelimit.Slot{At: at, Held: true, Binding: ratelimit.BindMinInterval}
		}
		return ratelimit.Slot{At: at, Go: true, Binding: ratelimit.BindReserved}
	})
	e := newEnv(t, func(c *envConfig) { c.opts.Limiter = fl })
	var ids []string
	for i := range 3 {
		id := newID("slot")
		e.submit(message(id, accA, "chat-x"+twoDigits(i)))
		ids = append(ids, id)
	}
	for _, id := range ids {
		rec := e.waitTerminal(id, 10*time.Second)
		ds := e.deliveries(id)
		if rec.State != tasks.StateSent || len(ds) != 1 {
			t.Fatalf("%s: %s, %d deliveries", id, rec.State, len(ds))
		}
		mu.Lock()
		at := slots[id]
		mu.Unlock()
		if late := ds[0].At.Sub(at); late < 0 || late > 150*time.Millisecond {
			t.Errorf("%s delivered %s after its slot", id, late)
		}
	}
}

// TestGuardRefusalGivesSlotBack: a send that a guard refuses after taking its rate-limit slot
// (here contact_replied, which needs a provider read, so it runs after the slot) does not count
// against the account's caps: the Redis limiter's forecast shows no slot used in the hour, and
// the next send of the account goes at once.
func TestGuardRefusalGivesSlotBack(t *testing.T) {
	t.Parallel()
	var lim *ratelimit.Limiter
	e := newEnv(t, func(c *envConfig) { c.noStart = true })
	lim = ratelimit.New(e.rdb, ratelimit.Options{LimitsFor: func(string) config.Limits {
		return config.Limits{MinInterval: time.Hour, HourlyCap: 60}
	}})
	e.opts.Limiter = lim
	e.worker = New(e.redisOpt, e.ledger, e.provider, e.opts)
	e.start()

	since := time.Now().Add(-10 * time.Minute)
	if _, err := e.sim.Sim().AddIncomingMessage(chatA1, "No thanks", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	replied := newID("refund-replied")
	req := message(replied, accA, chatA1)
	req.StopIfRepliedSince = &since
	e.submit(req)
	if rec := e.waitTerminal(replied, 10*time.Second); rec.State != tasks.StateSkipped || rec.Reason != tasks.ReasonContactReplied {
		t.Fatalf("%s: %s %s, want skipped contact_replied", replied, rec.State, rec.Reason)
	}
	f, err := lim.Forecast(context.Background(), accA, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if f.SlotsLastHour != 0 || f.Queued != 0 {
		t.Fatalf("a skipped send counts against the caps: %d slot(s) in the last hour, %d queued", f.SlotsLastHour, f.Queued)
	}
	// With a one-hour minimum interval, a slot left used would hold the next send an hour.
	next := newID("refund-next")
	e.submit(message(next, accA, chatA2))
	if rec := e.waitTerminal(next, 10*time.Second); rec.State != tasks.StateSent {
		t.Fatalf("%s: %s %s (%s), want sent at once", next, rec.State, rec.Reason, historyString(rec))
	}
}

// unnamedSendProvider delivers sends but answers without the new message's id, as a provider
// may: the worker then looks the message up in the chat.
type unnamedSendProvider struct{ *countingProvider }

func (p unnamedSendProvider) SendMessage(ctx context.Context, chatID string, params provider.SendMessageParams) (*provider.MessageSent, error) {
	res, err := p.countingProvider.SendMessage(ctx, chatID, params)
	if res != nil {
		res.MessageID = nil
	}
	return res, err
}

// TestMessageLookupIsPaced: only the sending call skips the client's pacer (it was paced before
// BeginAttempt); the look-up of a message the provider accepted without naming it is paced like
// any read.
func TestMessageLookupIsPaced(t *testing.T) {
	t.Parallel()
	fl := newFakeLimiter(func(_ *tasks.Record, now time.Time, _ int) ratelimit.Slot {
		return ratelimit.Slot{At: now, Go: true}
	})
	e := newEnv(t, func(c *envConfig) {
		c.noStart = true
		c.opts.Limiter = fl
		c.provider = func(cl *provider.Client, _ *wasim.Sim) Provider {
			return unnamedSendProvider{&countingProvider{Client: cl}}
		}
	})
	id := newID("unnamed")
	e.submit(message(id, accA, chatA1))
	if err := e.worker.Handler().ProcessTask(context.Background(), e.releaseTask(id)); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	rec := e.get(id)
	if rec.State != tasks.StateSent || rec.Result == nil || rec.Result.MessageID == "" {
		t.Fatalf("state %s %s, result %+v: want sent with the looked-up message id", rec.State, rec.Reason, rec.Result)
	}
	// Every request the provider saw but the sending call waited for the global rate through
	// the client's pacer, and the sending call once before BeginAttempt.
	requests := e.sim.Sim().Stats().Requests
	if len(requests[provider.OpChatsMessagesList]) == 0 {
		t.Fatalf("no message listing: %v", requests)
	}
	var reads int64
	for op, byStatus := range requests {
		if op == provider.OpChatsMessagesSend {
			continue
		}
		for _, n := range byStatus {
			reads += int64(n)
		}
	}
	if globals := fl.globals.Load(); globals != reads+1 {
		t.Errorf("%d global waits for %d reads and one send; provider saw %v", globals, reads, requests)
	}
}
