package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/tasks"
)

const (
	sec  = time.Second
	hour = time.Hour
	day  = 24 * time.Hour
)

// TestReserveBacklog queues sends at one instant (a backlog) under each limit alone and
// combined, and checks the slot each one gets.
func TestReserveBacklog(t *testing.T) {
	_, rdb := startRedis(t)
	cases := []struct {
		name  string
		lim   config.Limits
		rand  float64
		ops   string // r = reply, n = chats_create, one send each
		want  []time.Duration
		binds []Binding // optional: the binding of each send
	}{
		{name: "no limits", lim: config.Limits{}, ops: "rrr", want: []time.Duration{0, 0, 0}},
		{name: "min interval", lim: config.Limits{MinInterval: 10 * sec}, ops: "rrrr",
			want:  []time.Duration{0, 10 * sec, 20 * sec, 30 * sec},
			binds: []Binding{BindNone, BindMinInterval, BindMinInterval, BindMinInterval}},
		{name: "jitter half", lim: config.Limits{MinInterval: 10 * sec, Jitter: 10 * sec}, rand: 0.5, ops: "rrr",
			want: []time.Duration{0, 15 * sec, 30 * sec}},
		{name: "jitter max", lim: config.Limits{MinInterval: 10 * sec, Jitter: 10 * sec}, rand: 0.99999999, ops: "rrr",
			want: []time.Duration{0, 20 * sec, 40 * sec}},
		{name: "hourly cap", lim: config.Limits{HourlyCap: 3}, ops: "rrrrrrr",
			want:  []time.Duration{0, 0, 0, hour, hour, hour, 2 * hour},
			binds: []Binding{BindNone, BindNone, BindNone, BindHourlyCap, BindMinInterval, BindMinInterval, BindHourlyCap}},
		{name: "daily cap", lim: config.Limits{MinInterval: 10 * sec, DailyCap: 2}, ops: "rrrr",
			want: []time.Duration{0, 10 * sec, day, day + 10*sec}},
		{name: "new chats hourly", lim: config.Limits{NewChatsHourlyCap: 2}, ops: "nnnrnn",
			// The reply does not queue behind the new chats' budget.
			want:  []time.Duration{0, 0, hour, 0, hour, 2 * hour},
			binds: []Binding{BindNone, BindNone, BindNewChatsHour, BindNone, BindMinInterval, BindNewChatsHour}},
		{name: "new chats daily", lim: config.Limits{NewChatsDailyCap: 1, NewChatsHourlyCap: 5}, ops: "nn",
			want: []time.Duration{0, day}, binds: []Binding{BindNone, BindNewChatsDay}},
		{name: "new chats count in the hourly cap", lim: config.Limits{HourlyCap: 3, NewChatsHourlyCap: 2}, ops: "nnrr",
			want: []time.Duration{0, 0, 0, hour}},
		{name: "combined", lim: config.Limits{MinInterval: 10 * sec, HourlyCap: 3, DailyCap: 5}, ops: "rrrrrrr",
			want: []time.Duration{0, 10 * sec, 20 * sec, hour, hour + 10*sec, day, day + 10*sec},
			binds: []Binding{BindNone, BindMinInterval, BindMinInterval, BindHourlyCap, BindMinInterval,
				BindDailyCap, BindMinInterval}},
		{name: "combined with new chats", lim: config.Limits{MinInterval: 10 * sec, HourlyCap: 4, NewChatsHourlyCap: 1}, ops: "nrnrr",
			want: []time.Duration{0, 10 * sec, hour, 20 * sec, 30 * sec}},
		{name: "replies weave around queued new chats", lim: config.Limits{MinInterval: 10 * sec, HourlyCap: 3, NewChatsHourlyCap: 1},
			ops: "nnrrrr",
			// n0 at 0, n1 at 1h; replies at 10s and 20s fill the first hour; the next would
			// make 4 in (20s, 1h+20s]... so 1h+10s (after n1's spacing) and 1h+20s.
			want: []time.Duration{0, hour, 10 * sec, 20 * sec, hour + 10*sec, hour + 20*sec}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t, rdb, tc.lim, func(o *Options) { o.Rand = fixedRand(tc.rand) })
			acct := fmt.Sprintf("acct-%d", i)
			var got []time.Duration
			var binds []Binding
			for j, op := range tc.ops {
				rec := reply(fmt.Sprintf("s%d-%d", i, j), acct, fmt.Sprintf("chat-%d", j))
				if op == 'n' {
					rec = newChat(rec.SendID, acct, fmt.Sprintf("att-%d", j))
				}
				s := slotOf(t, l, rec, t0)
				if s.Go != (s.At.Compare(t0) <= 0) || s.Held == s.Go {
					t.Errorf("send %d: slot %+v: Go/Held inconsistent", j, s)
				}
				got = append(got, s.At.Sub(t0))
				binds = append(binds, s.Binding)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("slots %v, want %v", got, tc.want)
			}
			if tc.binds != nil && !slices.Equal(binds, tc.binds) {
				t.Errorf("bindings %v, want %v", binds, tc.binds)
			}
		})
	}
}

func TestReserveGoNowReturnsZero(t *testing.T) {
	_, rdb := startRedis(t)
	l := newLimiter(t, rdb, config.Limits{MinInterval: 10 * sec})
	ctx := context.Background()
	if at, err := l.Reserve(ctx, reply("a", "acct", "c1"), t0); err != nil || !at.IsZero() {
		t.Fatalf("first send: %v, %v; want zero time", at, err)
	}
	at, err := l.Reserve(ctx, reply("b", "acct", "c2"), t0)
	if err != nil || !at.Equal(t0.Add(10*sec)) {
		t.Fatalf("second send: %v, %v; want %v", at, err, t0.Add(10*sec))
	}
	if _, err := l.Reserve(ctx, &tasks.Record{SendID: "x"}, t0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("record without account: %v, want ErrInvalid", err)
	}
}

// TestReservationIdempotent: a send asking again before its slot gets the same slot and takes
// no second one; at its slot it consumes it; after that it is a new attempt.
func TestReservationIdempotent(t *testing.T) {
	_, rdb := startRedis(t)
	l := newLimiter(t, rdb, config.Limits{MinInterval: 10 * sec})
	first := slotOf(t, l, reply("s1", "acct", "c1"), t0)
	s2 := slotOf(t, l, reply("s2", "acct", "c2"), t0)
	for _, now := range []time.Time{t0, t0.Add(time.Second), t0.Add(9999 * time.Millisecond)} {
		again := slotOf(t, l, reply("s2", "acct", "c2"), now)
		if !again.At.Equal(s2.At) || !again.Held || again.Binding != BindReserved {
			t.Fatalf("asked again at %v: %+v, want the held slot %v", now, again, s2.At)
		}
	}
	if s3 := slotOf(t, l, reply("s3", "acct", "c3"), t0); !s3.At.Equal(t0.Add(20 * sec)) {
		t.Fatalf("third send got %v: asking again took another slot", s3.At.Sub(t0))
	}
	due := slotOf(t, l, reply("s2", "acct", "c2"), s2.At)
	if !due.Go || !due.At.Equal(s2.At) {
		t.Fatalf("at its slot: %+v, want go", due)
	}
	// Consumed: a new attempt of s2 is paced like a new send.
	if again := slotOf(t, l, reply("s2", "acct", "c2"), s2.At); again.Go || !again.At.Equal(t0.Add(30*sec)) {
		t.Fatalf("new attempt after consuming: %+v, want a new slot at +30s", again)
	}
	if !first.Go {
		t.Fatalf("first send: %+v, want go", first)
	}
}

func TestLateReservationIsForfeited(t *testing.T) {
	_, rdb := startRedis(t)
	l := newLimiter(t, rdb, config.Limits{MinInterval: 20 * sec})
	slotOf(t, l, reply("s1", "acct", "c1"), t0)
	slotOf(t, l, reply("s2", "acct", "c2"), t0)       // +20s
	s3 := slotOf(t, l, reply("s3", "acct", "c3"), t0) // +40s
	// An outage: both come back at +55s. s3 is within the grace (20s) and goes; s2 is 35s
	// late and would go at the same moment: it gets a new slot after the last one.
	now := t0.Add(55 * sec)
	if got := slotOf(t, l, reply("s3", "acct", "c3"), now); !got.Go || !got.At.Equal(s3.At) {
		t.Fatalf("s3 within grace: %+v", got)
	}
	got := slotOf(t, l, reply("s2", "acct", "c2"), now)
	if got.Go || !got.At.Equal(t0.Add(75*sec)) || got.Binding != "late:min_interval" {
		t.Fatalf("s2 late: %+v, want a new slot at +75s (MinInterval after s3's call at +55s)", got)
	}
	// Never forfeit: LateGrace < 0.
	l2 := newLimiter(t, rdb, config.Limits{MinInterval: 20 * sec}, func(o *Options) { o.LateGrace = -1 })
	slotOf(t, l2, reply("n1", "acct2", "c1"), t0)
	n2 := slotOf(t, l2, reply("n2", "acct2", "c2"), t0)
	if got := slotOf(t, l2, reply("n2", "acct2", "c2"), t0.Add(time.Hour)); !got.Go || !got.At.Equal(n2.At) {
		t.Fatalf("no forfeit: %+v", got)
	}
}

// Sends that reach their slots late, within the grace, never call the provider closer than
// MinInterval: the slots were spaced, and so are the calls. A refunded slot (no call) does not
// count as a call.
func TestLateSlotsWithinGraceNeverBurst(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	l := newLimiter(t, rdb, config.Limits{MinInterval: sec}) // grace: MinLateGrace (10s)
	if s1 := slotOf(t, l, reply("s1", "acct", "c1"), t0); !s1.Go {
		t.Fatalf("s1: %+v", s1)
	}
	slotOf(t, l, reply("s2", "acct", "c2"), t0) // +1s
	slotOf(t, l, reply("s3", "acct", "c3"), t0) // +2s
	// A stall: both come back at +5s, within the grace.
	now := t0.Add(5 * sec)
	if got := slotOf(t, l, reply("s2", "acct", "c2"), now); !got.Go {
		t.Fatalf("s2 at +5s: %+v, want go", got)
	}
	got := slotOf(t, l, reply("s3", "acct", "c3"), now)
	if got.Go || !got.At.Equal(t0.Add(6*sec)) || got.Binding != "late:min_interval" {
		t.Fatalf("s3 at +5s, right after s2's call: %+v, want a new slot at +6s", got)
	}
	if got := slotOf(t, l, reply("s3", "acct", "c3"), t0.Add(6*sec)); !got.Go {
		t.Fatalf("s3 at its new slot: %+v, want go", got)
	}

	// The same stall, but a guard refused the first late send (Refund): no call was made,
	// so the second may go at once.
	slotOf(t, l, reply("r1", "acct2", "c1"), t0)
	slotOf(t, l, reply("r2", "acct2", "c2"), t0) // +1s
	slotOf(t, l, reply("r3", "acct2", "c3"), t0) // +2s
	if got := slotOf(t, l, reply("r2", "acct2", "c2"), now); !got.Go {
		t.Fatalf("r2: %+v", got)
	}
	if ok, err := l.Refund(ctx, reply("r2", "acct2", "c2")); err != nil || !ok {
		t.Fatalf("refund: %v %v", ok, err)
	}
	if got := slotOf(t, l, reply("r3", "acct2", "c3"), now); !got.Go {
		t.Fatalf("r3 after r2's refund: %+v, want go", got)
	}
}

func TestPenalize(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	l := newLimiter(t, rdb, config.Limits{MinInterval: 10 * sec})
	slotOf(t, l, reply("s1", "acct", "c1"), t0)
	s2 := slotOf(t, l, reply("s2", "acct", "c2"), t0) // +10s
	slotOf(t, l, reply("s3", "acct", "c3"), t0)       // +20s
	s4 := slotOf(t, l, reply("s4", "acct", "c4"), t0) // +30s
	if !s4.At.Equal(t0.Add(30 * sec)) {
		t.Fatalf("setup: s4 at %v", s4.At.Sub(t0))
	}
	if err := l.Penalize(ctx, "acct", t0.Add(25*sec)); err != nil {
		t.Fatal(err)
	}
	// An earlier penalty changes nothing.
	if err := l.Penalize(ctx, "acct", t0.Add(5*sec)); err != nil {
		t.Fatal(err)
	}
	// s2 comes back at its slot inside the penalty: new slot after the queue (+40s).
	if got := slotOf(t, l, reply("s2", "acct", "c2"), s2.At); got.Go || !got.At.Equal(t0.Add(40*sec)) ||
		!strings.HasPrefix(string(got.Binding), "penalized:") {
		t.Fatalf("s2 inside the penalty: %+v", got)
	}
	// s3 asks early (before its slot): forfeited at once, no need to wait for +20s.
	if got := slotOf(t, l, reply("s3", "acct", "c3"), t0.Add(sec)); !got.At.Equal(t0.Add(50 * sec)) {
		t.Fatalf("s3 inside the penalty: %+v", got)
	}
	// s4 is after the penalty: keeps its slot.
	if got := slotOf(t, l, reply("s4", "acct", "c4"), s4.At); !got.Go || !got.At.Equal(s4.At) {
		t.Fatalf("s4 after the penalty: %+v", got)
	}
	// An idle account: a new send waits for the penalty.
	if err := l.Penalize(ctx, "idle", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := slotOf(t, l, reply("i1", "idle", "c"), t0); !got.At.Equal(t0.Add(time.Hour)) || got.Binding != BindPenalty {
		t.Fatalf("idle account: %+v", got)
	}
	f, err := l.Forecast(ctx, "idle", t0)
	if err != nil || !f.PenaltyUntil.Equal(t0.Add(time.Hour)) {
		t.Fatalf("forecast penalty: %+v, %v", f.PenaltyUntil, err)
	}
}

func TestNewChatBudgetTighterThanReplies(t *testing.T) {
	_, rdb := startRedis(t)
	lim := config.Limits{MinInterval: 10 * sec, HourlyCap: 60, DailyCap: 300, NewChatsHourlyCap: 2, NewChatsDailyCap: 3}
	l := newLimiter(t, rdb, lim)
	var creates, replies []time.Time
	// Interleaved backlog: 6 new chats and 6 replies.
	for i := range 6 {
		c := slotOf(t, l, newChat(fmt.Sprintf("n%d", i), "acct", fmt.Sprintf("att-%d", i)), t0)
		r := slotOf(t, l, reply(fmt.Sprintf("r%d", i), "acct", fmt.Sprintf("chat-%d", i)), t0)
		creates, replies = append(creates, c.At), append(replies, r.At)
	}
	checkWindows(t, "new chats", creates, 10*sec, 2, 3)
	want := []time.Duration{0, 20 * sec, hour, day, day + 20*sec, day + hour}
	if got := offsets(creates); !slices.Equal(got, want) {
		t.Fatalf("new chats at %v, want %v", got, want)
	}
	// Replies are only spaced: each follows the previous send.
	if got := offsets(replies); got[0] != 10*sec || got[1] != 30*sec {
		t.Fatalf("replies at %v", got)
	}
	checkWindows(t, "all sends", append(creates, replies...), 10*sec, 60, 300)
}

func TestWarmupRamp(t *testing.T) {
	_, rdb := startRedis(t)
	lim := config.Limits{DailyCap: 4, WarmupStart: 2, WarmupStep: 1}
	perDay := func(t *testing.T, created time.Time, n int) ([]int, []time.Time) {
		l := newLimiter(t, rdb, lim, func(o *Options) {
			o.AccountCreatedAt = func(context.Context, string) (time.Time, error) { return created, nil }
		})
		acct := "warm-" + created.Format("150405")
		var slots []time.Time
		counts := make([]int, 6)
		for i := range n {
			s := slotOf(t, l, reply(fmt.Sprintf("%s-%d", acct, i), acct, fmt.Sprintf("c%d", i)), t0)
			slots = append(slots, s.At)
			counts[int(s.At.Sub(created)/day)]++
		}
		return counts, slots
	}
	// Created at t0: days start at t0 + k days. Caps 2, 3, 4, then DailyCap 4.
	counts, slots := perDay(t, t0, 13)
	if want := []int{2, 3, 4, 4, 0, 0}; !slices.Equal(counts, want) {
		t.Fatalf("sends per day %v, want %v", counts, want)
	}
	checkWindows(t, "warm-up", slots, 0, 0, 4)
	// Created half a day before t0: the third send waits for the next day's higher cap
	// (t0+12h), not for 24 h after the first send.
	counts, slots = perDay(t, t0.Add(-12*time.Hour), 5)
	if want := []int{2, 3, 0, 0, 0, 0}; !slices.Equal(counts, want) {
		t.Fatalf("sends per day %v, want %v", counts, want)
	}
	if got := slots[2].Sub(t0); got != 12*time.Hour {
		t.Fatalf("third send at %v, want 12h", got)
	}

	// Unknown creation time (zero): no warm-up. Lookup error: treated as new.
	for _, tc := range []struct {
		name    string
		created time.Time
		err     error
		want    int // sends on the first day
	}{
		{"unknown", time.Time{}, nil, 4},
		{"lookup fails", time.Time{}, errors.New("provider down"), 2},
		{"old account", t0.Add(-100 * day), nil, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t, rdb, lim, func(o *Options) {
				o.AccountCreatedAt = func(context.Context, string) (time.Time, error) { return tc.created, tc.err }
			})
			n := 0
			for i := range 6 {
				if s := slotOf(t, l, reply(fmt.Sprintf("%s-%d", tc.name, i), tc.name, "c"), t0); s.At.Before(t0.Add(day)) {
					n++
				}
			}
			if n != tc.want {
				t.Fatalf("%d sends on the first day, want %d", n, tc.want)
			}
		})
	}
}

func TestRecipientCooldown(t *testing.T) {
	_, rdb := startRedis(t)
	l := newLimiter(t, rdb, config.Limits{MinInterval: 10 * sec, RecipientCooldown: hour})
	a := slotOf(t, l, reply("a", "acct", "chat-x"), t0)
	if !a.Go {
		t.Fatalf("first send to x: %+v", a)
	}
	// Same chat within the hour: told to come back at +1h, holding nothing.
	b := slotOf(t, l, reply("b", "acct", "chat-x"), t0)
	if b.Go || b.Held || !b.At.Equal(t0.Add(hour)) || b.Binding != BindRecipient {
		t.Fatalf("second send to x: %+v", b)
	}
	// It does not hold the account: a send to another chat gets the next slot.
	if c := slotOf(t, l, reply("c", "acct", "chat-y"), t0); !c.At.Equal(t0.Add(10 * sec)) {
		t.Fatalf("send to y: %+v, want +10s", c)
	}
	// Back at +1h: a slot now.
	if b2 := slotOf(t, l, reply("b", "acct", "chat-x"), t0.Add(hour)); !b2.Go {
		t.Fatalf("second send to x at +1h: %+v", b2)
	}
	// Attendees of a new chat are recipients too; one in cooldown holds the send.
	slotOf(t, l, newChat("n1", "acct", "att-1"), t0.Add(2*hour))
	if n2 := slotOf(t, l, newChat("n2", "acct", "att-2", "att-1"), t0.Add(2*hour+time.Minute)); n2.Binding != BindRecipient ||
		!n2.At.Equal(t0.Add(3*hour)) {
		t.Fatalf("new chat with an attendee in cooldown: %+v", n2)
	}
	// The same chat id on another account is another recipient.
	if o := slotOf(t, l, reply("o", "other", "chat-x"), t0); !o.Go {
		t.Fatalf("other account: %+v", o)
	}
}

func TestHorizon(t *testing.T) {
	_, rdb := startRedis(t)
	l := newLimiter(t, rdb, config.Limits{DailyCap: 1}, func(o *Options) { o.Horizon = 2 * day })
	for i, want := range []time.Duration{0, day, 2 * day} {
		if s := slotOf(t, l, reply(fmt.Sprint(i), "acct", "c"), t0); s.At.Sub(t0) != want {
			t.Fatalf("send %d at %v, want %v", i, s.At.Sub(t0), want)
		}
	}
	s := slotOf(t, l, reply("far", "acct", "c"), t0)
	if s.Held || s.Go || s.Binding != BindBeyondHorizon || !s.At.Equal(t0.Add(2*day)) {
		t.Fatalf("beyond the horizon: %+v", s)
	}
	if f, _ := l.Forecast(context.Background(), "acct", t0); f.Queued != 2 {
		t.Fatalf("queued %d, want 2 (nothing held beyond the horizon)", f.Queued)
	}
}

func TestCancelFreesFutureSlot(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	l := newLimiter(t, rdb, config.Limits{MinInterval: 10 * sec, RecipientCooldown: hour})
	slotOf(t, l, reply("s1", "acct", "c1"), t0)
	s2 := slotOf(t, l, reply("s2", "acct", "c2"), t0)
	if ok, err := l.Cancel(ctx, s2rec()); err != nil || !ok {
		t.Fatalf("cancel: %v, %v", ok, err)
	}
	// The freed slot (the last one) goes to the next send, and c2's cooldown is lifted.
	if s3 := slotOf(t, l, reply("s3", "acct", "c2"), t0); !s3.At.Equal(s2.At) {
		t.Fatalf("after cancel: %+v, want %v", s3, s2.At.Sub(t0))
	}
	if ok, _ := l.Cancel(ctx, s2rec()); ok {
		t.Fatal("second cancel freed something")
	}
	if ok, _ := l.Cancel(ctx, reply("s1", "acct", "c1")); ok {
		t.Fatal("canceled a consumed slot")
	}
}

func s2rec() *tasks.Record { return reply("s2", "acct", "c2") }

// TestRefundGivesBackConsumedSlot: a send refused by a guard after taking its slot (consumed
// now, or held for later) does not count against the caps once refunded, and lifts its
// recipient's cooldown; a refund gives back at most once.
func TestRefundGivesBackConsumedSlot(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	lim := config.Limits{MinInterval: 10 * sec, HourlyCap: 60, RecipientCooldown: hour}
	l := newLimiter(t, rdb, lim)
	count := func() int {
		t.Helper()
		f, err := l.Forecast(ctx, "acct", t0)
		if err != nil {
			t.Fatal(err)
		}
		return f.SlotsLastHour + f.Queued
	}
	s1 := reply("s1", "acct", "c1")
	if s := slotOf(t, l, s1, t0); !s.Go {
		t.Fatalf("first send does not go now: %+v", s)
	}
	if n := count(); n != 1 {
		t.Fatalf("slots before refund %d, want 1", n)
	}
	if ok, err := l.Refund(ctx, s1); err != nil || !ok {
		t.Fatalf("refund: %v, %v", ok, err)
	}
	if n := count(); n != 0 {
		t.Fatalf("a refunded send still counts: %d slot(s)", n)
	}
	if ok, _ := l.Refund(ctx, s1); ok {
		t.Fatal("second refund gave back something")
	}
	// The slot and the cooldown of c1 are free again: the next send to c1 goes now.
	if s := slotOf(t, l, reply("s2", "acct", "c1"), t0); !s.Go || !s.At.Equal(t0) {
		t.Fatalf("after refund: %+v, want go now", s)
	}
	// A held future slot is given back too.
	s3 := reply("s3", "acct", "c3")
	if s := slotOf(t, l, s3, t0); s.Go || !s.Held {
		t.Fatalf("s3: %+v, want held", s)
	}
	if ok, err := l.Refund(ctx, s3); err != nil || !ok {
		t.Fatalf("refund held: %v, %v", ok, err)
	}
	if n := count(); n != 1 {
		t.Fatalf("slots after refunding the held one: %d, want 1 (s2)", n)
	}
	// Cancel still never frees a consumed slot.
	if ok, _ := l.Cancel(ctx, reply("s2", "acct", "c1")); ok {
		t.Fatal("cancel freed a consumed slot")
	}
}

func TestForecast(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	lim := config.Limits{MinInterval: 10 * sec, HourlyCap: 3, DailyCap: 10, NewChatsHourlyCap: 1, NewChatsDailyCap: 5}
	l := newLimiter(t, rdb, lim)
	f, err := l.Forecast(ctx, "acct", t0)
	if err != nil {
		t.Fatal(err)
	}
	if !f.NextSlot.Equal(t0) || f.NextSlotBinding != BindNone || !f.LastSlot.IsZero() || f.Queued != 0 || f.DailyCap != 10 {
		t.Fatalf("empty account: %+v", f)
	}
	slotOf(t, l, newChat("n1", "acct", "a1"), t0.Add(-30*time.Minute))
	slotOf(t, l, reply("r1", "acct", "c1"), t0.Add(-2*time.Minute))
	slotOf(t, l, reply("r2", "acct", "c2"), t0) // goes now
	slotOf(t, l, reply("r3", "acct", "c3"), t0) // +1h (hourly cap)
	f, err = l.Forecast(ctx, "acct", t0)
	if err != nil {
		t.Fatal(err)
	}
	want := Forecast{
		AccountID: "acct", At: t0, Limits: lim, DailyCap: 10,
		// Slots at -30m, -2m, 0, +30m: the 3rd newest is -2m, so +58m.
		NextSlot: t0.Add(58 * time.Minute), NextSlotBinding: BindHourlyCap,
		NextNewChatSlot: t0.Add(58 * time.Minute), NextNewChatSlotBinding: BindHourlyCap,
		LastSlot:      t0.Add(30 * time.Minute),
		SlotsLastHour: 3, SlotsLastDay: 3, NewChatsLastHour: 1, NewChatsLastDay: 1,
		Queued: 1,
	}
	if f != want {
		t.Fatalf("forecast\n got %+v\nwant %+v", f, want)
	}
	// Forecast changes nothing.
	if s := slotOf(t, l, reply("r4", "acct", "c4"), t0); !s.At.Equal(want.NextSlot) {
		t.Fatalf("next send at %v, forecast said %v", s.At, want.NextSlot)
	}
}

// TestKeysHashTagged: every key the limiter writes carries the {prefix} hash tag, and expires.
func TestKeysHashTagged(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	l := newLimiter(t, rdb, config.Limits{MinInterval: sec, RecipientCooldown: hour}, func(o *Options) {
		o.Prefix = "px"
		o.GlobalRPS = 1000
	})
	slotOf(t, l, newChat("n1", "a:b", "att"), t0)
	slotOf(t, l, reply("r1", "a:b", "c"), t0)
	if err := l.Penalize(ctx, "a:b", t0.Add(sec)); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitGlobal(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err := rdb.Keys(ctx, "*").Result()
	if err != nil || len(ks) < 6 {
		t.Fatalf("keys %v, %v", ks, err)
	}
	for _, k := range ks {
		if !strings.HasPrefix(k, "{px}:rl:") {
			t.Errorf("key %q without the {px} hash tag", k)
		}
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %q never expires (PTTL %v)", k, ttl)
		}
	}
}

// With RedisClock the slots are judged on Redis's clock, whatever clock the caller passes: a
// replica two minutes ahead or behind neither goes early nor spaces its calls on its own time.
func TestRedisClockIgnoresTheCallersClock(t *testing.T) {
	_, rdb := startRedis(t)
	l := newLimiter(t, rdb, config.Limits{MinInterval: 10 * sec}, func(o *Options) { o.RedisClock = true })
	real := time.Now()
	near := func(what string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d < -2*sec || d > 2*sec {
			t.Fatalf("%s at %v, want about %v (Redis's clock)", what, got, want)
		}
	}
	s1 := slotOf(t, l, reply("s1", "acct", "c1"), real.Add(2*time.Minute)) // a replica ahead
	if !s1.Go {
		t.Fatalf("s1: %+v", s1)
	}
	near("s1", s1.At, real)
	s2 := slotOf(t, l, reply("s2", "acct", "c2"), real.Add(-2*time.Minute)) // a replica behind
	if s2.Go || !s2.Held {
		t.Fatalf("s2: %+v, want a held slot", s2)
	}
	near("s2", s2.At, real.Add(10*sec))
	// The replica ahead asks at what its clock calls s2's slot: Redis says not yet.
	if again := slotOf(t, l, reply("s2", "acct", "c2"), s2.At.Add(2*time.Minute)); again.Go {
		t.Fatalf("s2 went early on a clock two minutes ahead: %+v", again)
	}
}
