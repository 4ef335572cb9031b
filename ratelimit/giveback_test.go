package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/tasks"
)

// TestGiveBackFreesAConsumedSlot: a send that consumed its slot and then made no sending call
// (a guard refused it, its account turned out unhealthy) gives the slot back: the account's
// caps, spacing and forecast no longer count it, and the next send may take its place.
func TestGiveBackFreesAConsumedSlot(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	lim := config.Limits{MinInterval: 10 * sec, HourlyCap: 60, DailyCap: 300, NewChatsHourlyCap: 5, NewChatsDailyCap: 20, RecipientCooldown: hour}
	l := newLimiter(t, rdb, lim)

	tests := []struct {
		name string
		rec  *tasks.Record
	}{
		{"reply", reply("r1", "acct", "c1")},
		{"new chat", newChat("n1", "acct", "a1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := slotOf(t, l, tc.rec, t0)
			if !s.Go {
				t.Fatalf("first send of an idle account: %+v, want go now", s)
			}
			freed, err := l.GiveBack(ctx, tc.rec, s.At)
			if err != nil || !freed {
				t.Fatalf("give back: %v, %v", freed, err)
			}
			f, err := l.Forecast(ctx, "acct", t0)
			if err != nil {
				t.Fatal(err)
			}
			if f.SlotsLastHour != 0 || f.SlotsLastDay != 0 || f.NewChatsLastHour != 0 || !f.LastSlot.IsZero() ||
				!f.NextSlot.Equal(t0) || !f.NextNewChatSlot.Equal(t0) {
				t.Fatalf("forecast after give back counts the slot: %+v", f)
			}
			// Nothing left to free a second time.
			if freed, err := l.GiveBack(ctx, tc.rec, s.At); err != nil || freed {
				t.Fatalf("second give back: %v, %v", freed, err)
			}
			// The same send (same recipient: the cooldown was lifted) goes now again.
			if s2 := slotOf(t, l, tc.rec, t0); !s2.Go || !s2.At.Equal(t0) {
				t.Fatalf("after give back: %+v, want go now", s2)
			}
			if _, err := l.GiveBack(ctx, tc.rec, t0); err != nil {
				t.Fatal(err)
			}
		})
	}

	// Only that send's slot at that time: another send's slot is never freed.
	other := reply("r9", "acct", "c9")
	s := slotOf(t, l, other, t0)
	if freed, _ := l.GiveBack(ctx, reply("r1", "acct", "c1"), s.At); freed {
		t.Fatal("gave back another send's slot")
	}
	if freed, _ := l.GiveBack(ctx, other, s.At.Add(time.Millisecond)); freed {
		t.Fatal("gave back a slot at another time")
	}
	if f, _ := l.Forecast(ctx, "acct", t0); f.SlotsLastHour != 1 {
		t.Fatalf("slots last hour %d, want 1 (r9's)", f.SlotsLastHour)
	}
	if _, err := l.GiveBack(ctx, &tasks.Record{}, t0); err == nil {
		t.Fatal("give back of an empty record: no error")
	}
}
