package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// WaitGlobal blocks until this process may make one provider request under GlobalRPS, which
// holds for all replicas together. Call it right before each provider request; with
// GlobalRPS 0 it returns at once.
//
// Two gates: first this process's own x/time/rate limiter (GlobalRPS, GlobalBurst), so a
// process alone never exceeds the rate nor asks Redis faster than it; then one call of a
// GCRA script in Redis that reserves the cluster's next emission time and answers how long
// to wait for it. The caller sleeps once and never retries, so Redis work is one call per
// request. The wait grows with the number of requests queued cluster-wide (bounded by the
// total worker concurrency), which is the point. A request abandoned (ctx done) while
// waiting for its reserved time leaves that time unused: conservative.
func (l *Limiter) WaitGlobal(ctx context.Context) error {
	if l.local == nil {
		return nil
	}
	now := l.opts.Now()
	r := l.local.ReserveN(now, 1)
	if !r.OK() {
		return fmt.Errorf("ratelimit: global rate: burst %d too small", l.opts.GlobalBurst)
	}
	if err := l.sleepUntil(ctx, r.DelayFrom(now)); err != nil {
		r.CancelAt(l.opts.Now())
		return err
	}

	now = l.opts.Now()
	interval := time.Duration(float64(time.Second) / l.opts.GlobalRPS)
	tolerance := time.Duration(l.opts.GlobalBurst-1) * interval
	wait, err := l.lua.Run(ctx, globalScript, []string{l.keys.global()},
		now.UnixMicro(), interval.Microseconds(), tolerance.Microseconds()).Int64()
	if err != nil {
		return fmt.Errorf("ratelimit: global rate: %w", err)
	}
	d := time.Duration(wait) * time.Microsecond
	if l.global != nil {
		l.global.Observe((r.DelayFrom(now) + d).Seconds())
	}
	return l.sleepUntil(ctx, d)
}

// sleepUntil waits d, or returns early with an error when ctx ends first or its deadline
// comes before d ends (like rate.Limiter.Wait, without waiting in vain).
func (l *Limiter) sleepUntil(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(l.opts.Now().Add(d)) {
		return fmt.Errorf("ratelimit: global rate: wait of %v exceeds the context deadline", d)
	}
	return l.sleep(ctx, d)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
