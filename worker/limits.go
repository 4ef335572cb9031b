package worker

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

// reservation is what the limiter granted an execution.
type reservation struct {
	at      time.Time         // the slot's time
	held    bool              // the send holds a slot still in the future (at most SlotLead away)
	binding ratelimit.Binding // the limit that decided the slot ("" when none did)
}

// maxSlotWaits bounds the waits for a near slot in one execution (a slot moved by a penalty, or
// a clock that does not advance, fall back to a deferral).
const maxSlotWaits = 3

// reserve takes the send's rate-limit slot before any provider read. It returns the reservation
// when the send may go on: its slot has come (consumed), or it holds one at most SlotLead away
// (it reads now and waits for the slot before sending, see awaitSlot). Otherwise it returns the
// deferral: until SlotLead before a held slot, or until the time to ask again.
func (x *execution) reserve(ctx context.Context) (reservation, outcome, bool) {
	now := x.w.opts.Now()
	s, err := x.w.opts.Limiter.ReserveSlot(ctx, x.rec, now)
	if err != nil {
		return reservation{}, retryAfter(5*time.Second, "limiter unavailable: "+err.Error()), true
	}
	r := reservation{at: s.At, binding: s.Binding}
	switch {
	case s.Go:
		return r, outcome{}, false
	case s.Held && !s.At.After(now.Add(x.w.opts.SlotLead)):
		r.held = true
		return r, outcome{}, false
	}
	until := s.At
	if s.Held {
		until = s.At.Add(-x.w.opts.SlotLead)
	}
	return r, wait(until, tasks.ReasonWaitRateLimit, slotDetail(s)), true
}

// slotDetail is the detail of a rate-limit wait: "rate_limit: daily_cap until <slot>".
func slotDetail(s ratelimit.Slot) string {
	at := s.At.UTC().Format(time.RFC3339Nano)
	if s.Binding == "" {
		return "rate_limit until " + at
	}
	return fmt.Sprintf("rate_limit: %s until %s", s.Binding, at)
}

// awaitSlot waits (at most SlotLead, in the worker) for the near slot the send holds and
// consumes it, so the sending call goes out at the slot's time. The guards ran meanwhile. If
// the slot moved (a penalty forfeited it), the send is deferred to its new slot.
func (x *execution) awaitSlot(ctx context.Context, r reservation) (outcome, bool) {
	for range maxSlotWaits {
		if d := r.at.Sub(x.w.opts.Now()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				// Stopping: the slot stays held; the task comes back and consumes it (or a new one).
				return retryAfter(time.Second, "stopped while waiting for the rate-limit slot"), true
			}
		}
		var o outcome
		var stop bool
		if r, o, stop = x.reserve(ctx); stop {
			return o, true
		}
		if !r.held {
			return outcome{}, false // consumed: go
		}
	}
	return wait(r.at.Add(-x.w.opts.SlotLead), tasks.ReasonWaitRateLimit, "rate_limit: slot not reached"), true
}

// releaseSlot gives back the slot a send held when a guard stopped it after its reservation
// (a skip, a failure, a wait): the next send of the account may take it. Best effort: a slot
// left held is a gap, which is safe.
func (x *execution) releaseSlot(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	freed, err := x.w.opts.Limiter.Cancel(cctx, x.rec)
	if err != nil {
		x.logger().Debug("rate-limit slot not released", zap.Error(err))
		return
	}
	if freed {
		x.logger().Debug("rate-limit slot released")
	}
}

// refundSlot gives back the slot this execution took (held or already consumed) when a guard
// refused the send before any sending call.
func (x *execution) refundSlot(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	refunded, err := x.w.opts.Limiter.Refund(cctx, x.rec)
	if err != nil {
		x.logger().Debug("rate-limit slot not given back", zap.Error(err))
		return
	}
	if refunded {
		x.logger().Debug("rate-limit slot given back")
	}
}

// penalize slows the whole account after a provider 429, on every replica.
func (x *execution) penalize(ctx context.Context, until time.Time) {
	if x.rec == nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := x.w.opts.Limiter.Penalize(pctx, x.rec.Request.AccountID, until); err != nil {
		x.logger().Warn("account rate-limit penalty not recorded", zap.Time("until", until), zap.Error(err))
	}
}

// waitGlobal waits for the global provider request rate before the sending call. It is called
// before BeginAttempt, never with an attempt lease running; the sending call then goes out
// with provider.WithoutPacing, so the client does not wait a second time. The provider reads
// are paced by the client itself (provider.Options.Pacer, wired by the app to the same
// WaitGlobal); a read whose wait failed returns a *provider.PaceError (see readError).
func (x *execution) waitGlobal(ctx context.Context) (outcome, bool) {
	if err := x.w.opts.Limiter.WaitGlobal(ctx); err != nil {
		if ctx.Err() != nil {
			return retryAfter(time.Second, "stopped while waiting for the global request rate"), true
		}
		return retryAfter(5*time.Second, "global rate limiter unavailable: "+err.Error()), true
	}
	return outcome{}, false
}
