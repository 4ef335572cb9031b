package worker

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

// The regression tests of "at most once against a late or skewed provider": each drives one
// send whose sending call reaches the provider while its answer is lost, under a condition
// that used to make reconciliation take "not there yet" for "never": a replica clock that
// differs from the provider's, a provider clock that differs from ours, a provider that stores
// the message after the client gave up, a chat the provider briefly does not find.

// oneDelivery checks the send ended sent, with exactly one applied delivery whose message id
// the record carries, and one attempt.
func oneDelivery(t *testing.T, e *env, id string, rec *tasks.Record) {
	t.Helper()
	ds := e.deliveries(id)
	if rec.State != tasks.StateSent || applied(ds) != 1 {
		t.Fatalf("state %s %s (%s), %d applied deliveries %+v; %s", rec.State, rec.Reason, rec.Detail, applied(ds), ds, historyString(rec))
	}
	var delivered string
	for _, d := range ds {
		if d.Applied {
			delivered = d.MessageID
		}
	}
	if rec.Result.MessageID != delivered {
		t.Fatalf("message id %q, delivered %q", rec.Result.MessageID, delivered)
	}
	if rec.Attempts != 1 {
		t.Fatalf("%d attempts: the lost outcome must not start a second one; %s", rec.Attempts, historyString(rec))
	}
}

// TestReplicaClockSkewDeliversOnce: the replica's clock (ledger, approval, worker) runs two
// minutes ahead of, or behind, Redis's and the provider's; the sending call is applied and
// its answer lost. Reconciliation must find the message, not resend it.
func TestReplicaClockSkewDeliversOnce(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{2 * time.Minute, -2 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *envConfig) {
				c.replicaNow = func() time.Time { return time.Now().Add(skew) }
				c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
					return &faultyProvider{Client: cl, sim: sim, faults: wasim.Faults{AcceptThenDropRate: 1}, left: 1}
				}
			})
			id := newID("skew")
			e.submit(message(id, accA, chatA1))
			oneDelivery(t, e, id, e.waitTerminal(id, 20*time.Second))
		})
	}
}

// TestProviderClockSkewDeliversOnce: the provider's clock (its message timestamps and Date
// header) runs two minutes ahead of, or behind, ours; the sending call is applied and its
// answer lost.
func TestProviderClockSkewDeliversOnce(t *testing.T) {
	t.Parallel()
	for _, offset := range []time.Duration{2 * time.Minute, -2 * time.Minute} {
		for _, op := range []tasks.Operation{tasks.OpSendMessage, tasks.OpCreateChat} {
			t.Run(offset.String()+"/"+string(op), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, func(c *envConfig) {
					c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
						base := wasim.Faults{ClockOffset: offset}
						sim.SetFaults(base)
						return &faultyProvider{Client: cl, sim: sim, base: base,
							faults: wasim.Faults{ClockOffset: offset, AcceptThenDropRate: 1}, left: 1}
					}
				})
				id := newID("pskew")
				req := message(id, accA, chatA1)
				if op == tasks.OpCreateChat {
					req = tasks.SendRequest{SendID: id, Operation: tasks.OpCreateChat, AccountID: accA, AttendeeIDs: []string{c2}, Text: "Hello again [" + id + "]"}
				}
				e.submit(req)
				oneDelivery(t, e, id, e.waitTerminal(id, 20*time.Second))
			})
		}
	}
}

// TestLateStoreDeliversOnce: the provider stores the message only after the client gave up
// (the call timed out), later than the first reconciliation read. The send stays undecided
// until the message can no longer land, and is then found: one delivery.
func TestLateStoreDeliversOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{
		// after the client's 1 s timeout, before the first read (timeout + 500 ms reconcile delay)
		{"after the client timeout", 1200 * time.Millisecond},
		// after the first read too
		{"after the reconcile delay", 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *envConfig) {
				c.opts.LateCompletion = 4 * time.Second // the provider completes within 4 s
				c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
					return &faultyProvider{Client: cl, sim: sim, faults: wasim.Faults{LateStoreRate: 1, LateStoreDelay: tc.delay}, left: 1}
				}
			})
			id := newID("late")
			e.submit(message(id, accA, chatA1))
			rec := e.waitTerminal(id, 30*time.Second)
			oneDelivery(t, e, id, rec)
			if ds := e.deliveries(id); ds[0].Outcome != "late_stored" {
				t.Fatalf("the late store did not happen: %+v", ds)
			}
		})
	}
}

// TestUndecidedSendShowsWhy: while a lost send could still land, the record says so and
// when the next check is; it stays sending, never resent.
func TestUndecidedSendShowsWhy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.opts.LateCompletion = time.Hour
		c.provider = func(cl *provider.Client, _ *wasim.Sim) Provider {
			return &lostBeforeApply{Client: cl, left: 1}
		}
	})
	id := newID("undecided")
	e.submit(message(id, accA, chatA1))
	rec := e.waitFor(id, 15*time.Second, "an absent read", func(r *tasks.Record) bool {
		return r.Reconcile != nil && r.Reconcile.AbsentReads > 0
	})
	rc := rec.Reconcile
	if rec.State != tasks.StateSending || rc.NextCheck.IsZero() || rc.LandsUntil.IsZero() || !strings.Contains(rc.Why, "could still") {
		t.Fatalf("state %s, reconcile %+v", rec.State, rc)
	}
	if rc.LandsUntil.Before(time.Now().Add(50 * time.Minute)) {
		t.Fatalf("lands until %s: the late-completion bound is an hour", rc.LandsUntil)
	}
	if rc.Watermark == nil || rc.Watermark.ChatID != chatA1 || rc.Watermark.MessageID != msgOwnRecent {
		t.Fatalf("watermark %+v, want the chat's newest message before the attempt", rc.Watermark)
	}
	if n := len(e.deliveries(id)); n != 0 {
		t.Fatalf("%d deliveries while undecided", n)
	}
}

// TestCautiousPolicyNeverResends: with ResendPolicy review, a send whose first call never
// reached the provider is not resent: needs_review with the evidence.
func TestCautiousPolicyNeverResends(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.opts.ResendPolicy = ResendNever
		c.provider = func(cl *provider.Client, _ *wasim.Sim) Provider {
			return &lostBeforeApply{Client: cl, left: 1}
		}
	})
	id := newID("cautious")
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 20*time.Second)
	if rec.State != tasks.StateNeedsReview || rec.Reason != tasks.ReasonUnknownOutcome || len(e.deliveries(id)) != 0 || rec.Attempts != 1 {
		t.Fatalf("state %s %s, %d deliveries, %d attempts; %s", rec.State, rec.Reason, len(e.deliveries(id)), rec.Attempts, historyString(rec))
	}
	for _, want := range []string{"attempt started", "watermark " + msgOwnRecent, "messages after the watermark"} {
		if !strings.Contains(rec.Detail, want) {
			t.Errorf("detail %q lacks %q", rec.Detail, want)
		}
	}
}

// chatMissingOnce answers 404 to the first chat read after its first sending call (every one
// after it when always): the provider briefly, or from then on, does not find a chat it has (a
// replica lagging, an index rebuilt).
type chatMissingOnce struct {
	*faultyProvider
	always      bool
	mu          sync.Mutex
	sent, given bool
}

func (c *chatMissingOnce) SendMessage(ctx context.Context, chatID string, p provider.SendMessageParams) (*provider.MessageSent, error) {
	c.mu.Lock()
	c.sent = true
	c.mu.Unlock()
	return c.faultyProvider.SendMessage(ctx, chatID, p)
}

func (c *chatMissingOnce) GetChat(ctx context.Context, chatID, accountID string) (*provider.Chat, error) {
	c.mu.Lock()
	missing := c.sent && (!c.given || c.always)
	c.given = c.given || missing
	c.mu.Unlock()
	if missing {
		return nil, &provider.Error{Op: provider.OpChatsGet, Status: http.StatusNotFound, Class: provider.ClassPermanent,
			Problem: &provider.Problem{Type: "errors/resource_not_found", Status: http.StatusNotFound}, Err: provider.ErrStatus}
	}
	return c.faultyProvider.GetChat(ctx, chatID, accountID)
}

// TestChatNotFoundWhileReconcilingIsNotAbsence: a 404 on the chat during reconciliation
// cannot tell whether the message is there: no resend.
func TestChatNotFoundWhileReconcilingIsNotAbsence(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
			return &chatMissingOnce{faultyProvider: &faultyProvider{Client: cl, sim: sim, faults: wasim.Faults{AcceptThenDropRate: 1}, left: 1}}
		}
	})
	id := newID("gone")
	e.submit(message(id, accA, chatA1))
	oneDelivery(t, e, id, e.waitTerminal(id, 20*time.Second))
}

// TestChatNotFoundWhileReconcilingEndsInReview: a chat the provider keeps answering 404 for
// after a lost send is never taken for proof that the message is absent: after the tries,
// needs_review, not a resend (nor a "skipped" for a message that went out).
func TestChatNotFoundWhileReconcilingEndsInReview(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
			return &chatMissingOnce{always: true, faultyProvider: &faultyProvider{Client: cl, sim: sim, faults: wasim.Faults{AcceptThenDropRate: 1}, left: 1}}
		}
	})
	id := newID("gone404")
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 30*time.Second)
	if rec.State != tasks.StateNeedsReview || rec.Reason != tasks.ReasonUnknownOutcome || applied(e.deliveries(id)) != 1 || rec.Attempts != 1 {
		t.Fatalf("state %s %s, %d applied, %d attempts; %s", rec.State, rec.Reason, applied(e.deliveries(id)), rec.Attempts, historyString(rec))
	}
	if !strings.Contains(rec.Detail, "does not find the chat") || !strings.Contains(rec.Detail, "attempt started") {
		t.Fatalf("detail %q", rec.Detail)
	}
}
