package worker

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/metrics"
	"github.com/sendworker/sendworker/provider"
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
// before BeginAttempt, never with an attempt lease running.
func (x *execution) waitGlobal(ctx context.Context) (outcome, bool) {
	g, ok := x.w.p.(*gatedProvider)
	if !ok || g.wait == nil {
		return outcome{}, false
	}
	if err := g.wait(ctx); err != nil {
		if ctx.Err() != nil {
			return retryAfter(time.Second, "stopped while waiting for the global request rate"), true
		}
		return retryAfter(5*time.Second, "global rate limiter unavailable: "+err.Error()), true
	}
	return outcome{}, false
}

// globalWaitError is a provider read that did not happen: the wait for the global request rate
// failed (Redis unavailable, or the handler's context ended).
type globalWaitError struct{ err error }

func (e *globalWaitError) Error() string { return "global provider rate: " + e.err.Error() }
func (e *globalWaitError) Unwrap() error { return e.err }

// gatedProvider is the worker's view of the provider: every read first waits for the global
// request rate (the limiter's WaitGlobal), and every failed call is counted in the
// metrics. Sending calls are not gated here: the worker waits before BeginAttempt instead.
// Listings wait before their first page and before each further full page (Limit items, 100
// when 0): the iterator does not say when it fetches.
type gatedProvider struct {
	p    Provider
	wait func(ctx context.Context) error // nil: no global rate
	m    *metrics.Metrics
}

func (g *gatedProvider) gate(ctx context.Context) error {
	if g.wait == nil {
		return nil
	}
	if err := g.wait(ctx); err != nil {
		return &globalWaitError{err: err}
	}
	return nil
}

// observe counts a failed provider call.
func (g *gatedProvider) observe(err error) {
	var pe *provider.Error
	if err != nil && errors.As(err, &pe) {
		g.m.ProviderError(pe.Op, pe.Class.String())
	}
}

func (g *gatedProvider) GetAccount(ctx context.Context, accountID string) (*provider.Account, error) {
	if err := g.gate(ctx); err != nil {
		return nil, err
	}
	a, err := g.p.GetAccount(ctx, accountID)
	g.observe(err)
	return a, err
}

func (g *gatedProvider) GetChat(ctx context.Context, chatID, accountID string) (*provider.Chat, error) {
	if err := g.gate(ctx); err != nil {
		return nil, err
	}
	c, err := g.p.GetChat(ctx, chatID, accountID)
	g.observe(err)
	return c, err
}

func (g *gatedProvider) Chats(ctx context.Context, p provider.ListChatsParams) iter.Seq2[provider.Chat, error] {
	return gatedPages(ctx, g, p.Limit, g.p.Chats(ctx, p))
}

func (g *gatedProvider) Messages(ctx context.Context, chatID string, p provider.ListMessagesParams) iter.Seq2[provider.Message, error] {
	return gatedPages(ctx, g, p.Limit, g.p.Messages(ctx, chatID, p))
}

func gatedPages[T any](ctx context.Context, g *gatedProvider, limit int, seq iter.Seq2[T, error]) iter.Seq2[T, error] {
	if limit <= 0 {
		limit = 100
	}
	return func(yield func(T, error) bool) {
		var zero T
		if err := g.gate(ctx); err != nil {
			yield(zero, err)
			return
		}
		n := 0
		var gateErr error
		for v, err := range seq {
			g.observe(err)
			if !yield(v, err) {
				return
			}
			if n++; err == nil && n%limit == 0 {
				// A full page: the next item may need another request.
				if gateErr = g.gate(ctx); gateErr != nil {
					break
				}
			}
		}
		if gateErr != nil {
			yield(zero, gateErr)
		}
	}
}

func (g *gatedProvider) SendMessage(ctx context.Context, chatID string, p provider.SendMessageParams) (*provider.MessageSent, error) {
	res, err := g.p.SendMessage(ctx, chatID, p)
	g.observe(err)
	return res, err
}

func (g *gatedProvider) StartChat(ctx context.Context, p provider.StartChatParams) (*provider.ChatStarted, error) {
	res, err := g.p.StartChat(ctx, p)
	g.observe(err)
	return res, err
}

func (g *gatedProvider) AddReaction(ctx context.Context, messageID, reaction string) error {
	err := g.p.AddReaction(ctx, messageID, reaction)
	g.observe(err)
	return err
}

func (g *gatedProvider) EditMessage(ctx context.Context, messageID, text string) error {
	err := g.p.EditMessage(ctx, messageID, text)
	g.observe(err)
	return err
}

func (g *gatedProvider) DeleteMessage(ctx context.Context, messageID string) error {
	err := g.p.DeleteMessage(ctx, messageID)
	g.observe(err)
	return err
}
