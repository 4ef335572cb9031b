package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/tasks"
)

// t0 is the simulated clock's start; tests move it by hand and never sleep.
var t0 = time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC)

// fixedRand always draws f: jitter = f·Jitter, deterministic.
func fixedRand(f float64) func() float64 { return func() float64 { return f } }

func startRedis(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	return srv, srv.Client(t)
}

func newLimiter(t *testing.T, rdb redis.UniversalClient, lim config.Limits, mod ...func(*Options)) *Limiter {
	t.Helper()
	o := Options{
		LimitsFor: func(string) config.Limits { return lim },
		Rand:      fixedRand(0),
		Now:       func() time.Time { return t0 },
	}
	for _, m := range mod {
		m(&o)
	}
	return New(rdb, o)
}

func reply(id, acct, chat string) *tasks.Record {
	return &tasks.Record{SendID: id, Request: tasks.SendRequest{
		SendID: id, Operation: tasks.OpSendMessage, AccountID: acct, ChatID: chat, Text: "hi"}}
}

func newChat(id, acct string, attendees ...string) *tasks.Record {
	return &tasks.Record{SendID: id, Request: tasks.SendRequest{
		SendID: id, Operation: tasks.OpCreateChat, AccountID: acct, AttendeeIDs: attendees, Text: "hi"}}
}

// slotOf reserves rec at now and returns its slot time (now when it may go now).
func slotOf(t *testing.T, l *Limiter, rec *tasks.Record, now time.Time) Slot {
	t.Helper()
	s, err := l.ReserveSlot(context.Background(), rec, now)
	if err != nil {
		t.Fatalf("reserve %s: %v", rec.SendID, err)
	}
	if s.Go && s.At.After(now) {
		t.Fatalf("reserve %s: go now with a slot in the future (%v)", rec.SendID, s.At)
	}
	return s
}

// offsets are slot times as durations after t0, for readable expectations.
func offsets(ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, x := range ts {
		out[i] = x.Sub(t0)
	}
	return out
}

// checkWindows scans every window that can hold the most slots (one ending at each slot) and
// fails when a limit is exceeded: slots closer than minInterval, more than hourly in an hour,
// more than daily in 24 h (caps of 0 are not checked).
func checkWindows(t *testing.T, what string, slots []time.Time, minInterval time.Duration, hourly, daily int) {
	t.Helper()
	if err := windowViolation(slots, minInterval, hourly, daily); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func windowViolation(slots []time.Time, minInterval time.Duration, hourly, daily int) error {
	s := slices.Clone(slots)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(s); i++ {
		if gap := s[i].Sub(s[i-1]); gap < minInterval {
			return fmt.Errorf("slots %d and %d are %v apart, under %v", i-1, i, gap, minInterval)
		}
	}
	for _, w := range []struct {
		d   time.Duration
		cap int
	}{{time.Hour, hourly}, {24 * time.Hour, daily}} {
		if w.cap == 0 {
			continue
		}
		if n, end := maxInWindow(s, w.d); n > w.cap {
			return fmt.Errorf("%d slots in the %v window ending %v, cap %d", n, w.d, end, w.cap)
		}
	}
	return nil
}

// maxInWindow is the most slots of the sorted s in any window (end-d, end].
func maxInWindow(s []time.Time, d time.Duration) (int, time.Time) {
	best, at, lo := 0, time.Time{}, 0
	for hi := range s {
		for !s[lo].After(s[hi].Add(-d)) {
			lo++
		}
		if n := hi - lo + 1; n > best {
			best, at = n, s[hi]
		}
	}
	return best, at
}
