package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/config"
)

// fakeClock is a simulated clock that only sleeping moves.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.now = c.now.Add(d)
	return ctx.Err()
}

func globalLimiter(t *testing.T, rdb redis.UniversalClient, clock *fakeClock, rps float64, burst int) *Limiter {
	t.Helper()
	l := newLimiter(t, rdb, config.Limits{}, func(o *Options) {
		o.GlobalRPS, o.GlobalBurst, o.Now = rps, burst, clock.Now
	})
	l.sleep = clock.Sleep
	return l
}

// TestWaitGlobalAcrossReplicas: three replicas taking turns share one rate: requests are
// exactly 1/GlobalRPS apart, whichever replica makes them.
func TestWaitGlobalAcrossReplicas(t *testing.T) {
	srv, _ := startRedis(t)
	clock := &fakeClock{now: t0}
	var ls []*Limiter
	for range 3 {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		ls = append(ls, globalLimiter(t, rdb, clock, 10, 1))
	}
	var at []time.Time
	for i := range 30 {
		if err := ls[i%3].WaitGlobal(context.Background()); err != nil {
			t.Fatal(err)
		}
		at = append(at, clock.Now())
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap != 100*time.Millisecond {
			t.Fatalf("requests %d and %d are %v apart, want 100ms", i-1, i, gap)
		}
	}
}

func TestWaitGlobalBurst(t *testing.T) {
	_, rdb := startRedis(t)
	clock := &fakeClock{now: t0}
	l := globalLimiter(t, rdb, clock, 2, 3)
	for range 3 {
		if err := l.WaitGlobal(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if !clock.Now().Equal(t0) {
		t.Fatalf("a burst of 3 waited %v", clock.Now().Sub(t0))
	}
	if err := l.WaitGlobal(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := clock.Now().Sub(t0); got != 500*time.Millisecond {
		t.Fatalf("4th request waited %v, want 500ms", got)
	}
}

func TestWaitGlobalOffAndDeadline(t *testing.T) {
	_, rdb := startRedis(t)
	clock := &fakeClock{now: t0}
	off := globalLimiter(t, rdb, clock, 0, 0)
	for range 100 {
		if err := off.WaitGlobal(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := rdb.DBSize(context.Background()).Val(); n != 0 || !clock.Now().Equal(t0) {
		t.Fatalf("GlobalRPS 0 waited or wrote (%d keys)", n)
	}

	l := globalLimiter(t, rdb, clock, 1, 1)
	if err := l.WaitGlobal(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(500*time.Millisecond))
	defer cancel()
	if err := l.WaitGlobal(ctx); err == nil {
		t.Fatal("waited past the context deadline")
	}
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := l.WaitGlobal(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
}
