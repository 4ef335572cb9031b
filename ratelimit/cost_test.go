package ratelimit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/tasks"
)

// defaultish are the daemon's default limits without the random jitter, so that every case
// below is deterministic.
var defaultish = config.Limits{MinInterval: 10 * sec, HourlyCap: 60, DailyCap: 300,
	NewChatsHourlyCap: 5, NewChatsDailyCap: 20}

// TestReserveCommandBudget counts the Redis commands one Reserve runs inside its script (INFO
// commandstats deltas on a throwaway Redis), by command, for the calls a send makes: a budget,
// so a change that adds a command to Reserve fails here. The figures of the README's "Rate
// limits" section come from this test (go test -run TestReserveCommandBudget -v ./ratelimit).
func TestReserveCommandBudget(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	type call struct {
		rec *tasks.Record
		at  time.Duration // after t0
	}
	cases := []struct {
		name   string
		lim    config.Limits
		clock  bool   // RedisClock (the daemon's setting)
		before []call // calls that set the account up, not counted
		call   call
		want   map[string]int64 // commands inside the script, by name
		goes   bool             // the counted call goes now (else it is held)
	}{
		{name: "first send of an account goes now", lim: defaultish,
			call: call{reply("f1", "first", "c"), 0}, goes: true,
			want: map[string]int64{"hmget": 1, "zremrangebyscore": 2, "get": 1, "zrevrangebyscore": 1,
				"zrangebyscore": 1, "zcount": 2, "zadd": 1, "hset": 1, "set": 1, "pexpire": 2}},
		{name: "a reply goes now after the account's last send", lim: defaultish,
			before: []call{{reply("s1", "steady", "c"), 0}},
			call:   call{reply("s2", "steady", "c"), 20 * sec}, goes: true,
			want: map[string]int64{"hmget": 1, "get": 1, "zrevrangebyscore": 1, "zrangebyscore": 1,
				"zcount": 2, "zadd": 1, "hset": 1, "set": 1}},
		{name: "a reply goes now an hour after the account's keys' lives were set: set anew, old slots trimmed",
			lim: defaultish, before: []call{{reply("h1", "hourly", "c"), 0}},
			call: call{reply("h2", "hourly", "c"), hour + sec}, goes: true,
			want: map[string]int64{"hmget": 1, "zremrangebyscore": 2, "get": 1, "zrevrangebyscore": 1,
				"zrangebyscore": 1, "zcount": 2, "zadd": 1, "hset": 1, "set": 1, "pexpire": 2}},
		{name: "a reply is deferred to a later slot", lim: defaultish,
			before: []call{{reply("d1", "defer", "c"), 0}},
			call:   call{reply("d2", "defer", "c"), sec},
			want: map[string]int64{"hmget": 1, "get": 1, "zrevrangebyscore": 1, "zrangebyscore": 1,
				"zcount": 2, "zadd": 1, "hset": 1, "set": 1}},
		{name: "a deferred reply comes back at its slot", lim: defaultish,
			before: []call{{reply("b1", "back", "c"), 0}, {reply("b2", "back", "c"), sec}},
			call:   call{reply("b2", "back", "c"), 10 * sec}, goes: true,
			want: map[string]int64{"hmget": 1, "get": 1, "del": 1, "set": 1, "hset": 1}},
		{name: "a new chat goes now after the account's last send", lim: defaultish,
			before: []call{{reply("n1", "newchat", "c"), 0}},
			call:   call{newChat("n2", "newchat", "att"), 20 * sec}, goes: true,
			want: map[string]int64{"hmget": 1, "get": 1, "zrevrangebyscore": 1, "zrangebyscore": 1,
				"zrevrange": 1, "zcount": 4, "zadd": 2, "hset": 1, "set": 1, "pexpire": 1}},
		{name: "limits off, Redis's clock (the throughput bench's trace)", lim: config.Limits{}, clock: true,
			before: []call{{reply("o1", "off", "c"), 0}},
			call:   call{reply("o2", "off", "c"), 0}, goes: true,
			want: map[string]int64{"time": 1, "hmget": 1, "get": 1, "zrevrangebyscore": 1, "zrangebyscore": 1,
				"zadd": 1, "hset": 1, "set": 1}},
	}
	// The library is loaded once: every counted call is one FCALL.
	if err := luaFunctions.Load(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t, rdb, tc.lim, func(o *Options) { o.RedisClock = tc.clock })
			now := t0
			if tc.clock {
				// the script reads Redis's clock; a caller's clock ahead of it keeps slotOf's
				// check (a go-now slot is not after the caller's now) meaningful
				now = time.Now().Add(time.Hour)
			}
			for _, c := range tc.before {
				slotOf(t, l, c.rec, now.Add(c.at))
			}
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			s := slotOf(t, l, tc.call.rec, now.Add(tc.call.at))
			if s.Go != tc.goes || s.Held == tc.goes {
				t.Fatalf("slot %+v, want go %v", s, tc.goes)
			}
			got := commandCalls(t, rdb)
			if got["fcall"] != 1 || got["evalsha"] != 0 || got["eval"] != 0 {
				t.Fatalf("script calls %v, want one FCALL", got)
			}
			delete(got, "fcall")
			var total int64
			for _, n := range got {
				total += n
			}
			var want int64
			for _, n := range tc.want {
				want += n
			}
			if !equalCalls(got, tc.want) {
				t.Errorf("commands in the script %s (%d), budget %s (%d)", show(got), total, show(tc.want), want)
			}
			t.Logf("%d commands: %s", total, show(got))
		})
	}
}

func show(m map[string]int64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// TestOldSlotsIgnoredUntilTrimmed: slots more than a day old count for no limit even before a
// Reserve trims them (it does so once FLOOR, now minus a day, is an hour past the last trim),
// and they are trimmed then.
func TestOldSlotsIgnoredUntilTrimmed(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	lim := config.Limits{MinInterval: time.Minute, DailyCap: 3}
	l := newLimiter(t, rdb, lim)
	card := func() int64 { return rdb.ZCard(ctx, l.keys.slots("acct")).Val() }
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for i, want := range []time.Duration{0, time.Minute, 2 * time.Minute} {
		if s := slotOf(t, l, reply(fmt.Sprint("a", i), "acct", "c"), at(want)); !s.Go {
			t.Fatalf("a%d: %+v", i, s)
		}
	}
	// A day less ten minutes later: the three slots fill the daily window; this Reserve trims
	// (nothing is older than a day) and records the trim.
	s := slotOf(t, l, reply("b", "acct", "c"), at(day-10*time.Minute))
	if !s.Held || !s.At.Equal(at(day)) || s.Binding != BindDailyCap {
		t.Fatalf("b: %+v, want held at t0+24h (daily cap)", s)
	}
	// Twenty minutes past the day: the first three slots are out of every window but not yet
	// trimmed (the last trim is 30 minutes old).
	if s := slotOf(t, l, reply("c", "acct", "c"), at(day+20*time.Minute)); !s.Go {
		t.Fatalf("c: %+v, want go now: the slots of a day ago count no more", s)
	}
	if s := slotOf(t, l, reply("d", "acct", "c"), at(day+21*time.Minute)); !s.Go {
		t.Fatalf("d: %+v, want go now", s)
	}
	// The window now holds b, c and d: the next slot is b's a day later (the third latest
	// by rank, with the untrimmed slots below it).
	s = slotOf(t, l, reply("e", "acct", "c"), at(day+22*time.Minute))
	if !s.Held || !s.At.Equal(at(2*day)) || s.Binding != BindDailyCap {
		t.Fatalf("e: %+v, want held at t0+48h (daily cap)", s)
	}
	if n := card(); n != 7 {
		t.Fatalf("%d slots, want 7 (3 a day old, not trimmed yet)", n)
	}
	f, err := l.Forecast(ctx, "acct", at(day+22*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if f.SlotsLastDay != 3 || f.Queued != 1 {
		t.Errorf("forecast: %d slots in the last day, %d queued; want 3, 1", f.SlotsLastDay, f.Queued)
	}
	// An hour after the last trim's floor, a Reserve trims the slots of a day ago.
	slotOf(t, l, reply("e", "acct", "c"), at(day+51*time.Minute))
	if n := card(); n != 4 {
		t.Fatalf("%d slots after the trim, want 4", n)
	}
}

// TestKeyLivesCoverTheLatestSlot: the slots zset and the account hash live at least a day
// and an hour past the account's latest slot, also when one of them was lost between calls
// (Reserve sets their lives only now and then).
func TestKeyLivesCoverTheLatestSlot(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	l := newLimiter(t, rdb, config.Limits{MinInterval: 10 * sec, NewChatsDailyCap: 1})
	u, a := l.keys.slots("acct"), l.keys.account("acct")
	need := func(what string, latest, now time.Time) {
		t.Helper()
		min := latest.Sub(now) + day + hour - time.Minute // a minute for the test's own run
		for _, k := range []string{u, a} {
			if ttl := rdb.PTTL(ctx, k).Val(); ttl < min {
				t.Errorf("%s: %s lives %v, under %v", what, k, ttl, min)
			}
		}
	}
	slotOf(t, l, newChat("n1", "acct", "x"), t0)
	n2 := slotOf(t, l, newChat("n2", "acct", "y"), t0)
	if !n2.Held || !n2.At.Equal(t0.Add(day)) {
		t.Fatalf("n2: %+v, want held a day later", n2)
	}
	need("a new chat queued a day ahead", n2.At, t0)

	// The slots zset is lost: the next Reserve makes it anew (ZADD), and gives it a life.
	if err := rdb.Rename(ctx, u, u+":kept").Err(); err != nil {
		t.Fatal(err)
	}
	slotOf(t, l, reply("r1", "acct", "c"), t0.Add(20*sec))
	if ttl := rdb.PTTL(ctx, u).Val(); ttl < day {
		t.Errorf("a slots zset made anew lives %v", ttl)
	}
	if err := rdb.Rename(ctx, u+":kept", u).Err(); err != nil {
		t.Fatal(err)
	}

	// The account hash is lost while a slot is queued a day ahead: the reply placed before it
	// sets the lives anew for the latest slot, not for its own.
	if err := rdb.Del(ctx, a).Err(); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	if s := slotOf(t, l, reply("r2", "acct", "c"), now); !s.Go {
		t.Fatalf("r2: %+v", s)
	}
	need("a reply before a new chat a day ahead, the hash lost", n2.At, now)
}

// BenchmarkReserve measures one account's Reserve in a steady state (each send goes now,
// 5 minutes after the last: under every default cap): Redis commands run inside the script and the script's Redis CPU
// (FCALL or EVALSHA usec of INFO commandstats) per Reserve.
func BenchmarkReserve(b *testing.B) {
	for _, bc := range []struct {
		name string
		lim  config.Limits
	}{{"limits off", config.Limits{}}, {"default limits", defaultish}} {
		b.Run(bc.name, func(b *testing.B) {
			rdb := redistest.Start(b).Client(b)
			ctx := context.Background()
			l := New(rdb, Options{LimitsFor: func(string) config.Limits { return bc.lim }, Rand: fixedRand(0)})
			if _, err := l.ReserveSlot(ctx, reply("warm", "acct", "c"), t0); err != nil {
				b.Fatal(err)
			}
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := l.ReserveSlot(ctx, reply(strconv.Itoa(i), "acct", "c"), t0.Add(time.Duration(i+1)*5*time.Minute)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			calls, usec := scriptStats(b, rdb)
			b.ReportMetric(float64(calls)/float64(b.N), "cmds/op")
			b.ReportMetric(float64(usec)/float64(b.N), "script-µs/op")
		})
	}
}

// scriptStats is, from INFO commandstats, the commands run (the script calls, FCALL or
// EVALSHA, INFO and CONFIG aside) and the script calls' usec (the scripts' Redis CPU, their
// commands included).
func scriptStats(tb testing.TB, rdb *redis.Client) (calls, usec int64) {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		if name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		for f := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			script := name == "evalsha" || name == "fcall"
			switch {
			case k == "calls" && !script:
				calls += n
			case k == "usec" && script:
				usec += n
			}
		}
	}
	return calls, usec
}
