package ratelimit

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/tasks"
)

// TestReplicasRace: three Limiters on three clients (three replicas) race for one account.
// Every window property must hold over all granted slots, each send holds exactly one slot,
// and every held slot is consumed at its time.
func TestReplicasRace(t *testing.T) {
	srv, _ := startRedis(t)
	lim := config.Limits{MinInterval: 10 * sec, Jitter: 10 * sec, HourlyCap: 60, DailyCap: 300,
		NewChatsHourlyCap: 5, NewChatsDailyCap: 20}
	const replicas, workers, perWorker = 3, 4, 60

	var clock atomic.Int64 // simulated ms after t0, moved forward by every call
	type grant struct {
		rec  *tasks.Record
		slot Slot
		l    *Limiter
	}
	var mu sync.Mutex
	var grants []grant
	var wg sync.WaitGroup
	for r := range replicas {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		rnd := rand.New(rand.NewPCG(uint64(r), 42))
		l := newLimiter(t, rdb, lim, func(o *Options) { o.Rand = rnd.Float64 })
		for w := range workers {
			wg.Go(func() {
				pick := rand.New(rand.NewPCG(uint64(r), uint64(w)))
				for i := range perWorker {
					id := fmt.Sprintf("r%d-w%d-%d", r, w, i)
					rec := reply(id, "hot", "chat-"+id)
					if pick.IntN(4) == 0 {
						rec = newChat(id, "hot", "att-"+id)
					}
					now := t0.Add(time.Duration(clock.Add(pick.Int64N(2000))) * time.Millisecond)
					s, err := l.ReserveSlot(context.Background(), rec, now)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					grants = append(grants, grant{rec, s, l})
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	var all, created []time.Time
	held := 0
	for _, g := range grants {
		if !g.slot.Go && !g.slot.Held {
			t.Fatalf("%s: no slot (%+v)", g.rec.SendID, g.slot)
		}
		if g.slot.Held {
			held++
		}
		all = append(all, g.slot.At)
		if g.rec.Request.Operation == tasks.OpCreateChat {
			created = append(created, g.slot.At)
		}
	}
	checkWindows(t, "all sends", all, lim.MinInterval, lim.HourlyCap, lim.DailyCap)
	checkWindows(t, "new chats", created, 0, lim.NewChatsHourlyCap, lim.NewChatsDailyCap)
	if n := maxIn(all, lim.MinInterval); n > 1 {
		t.Errorf("%d sends within one MinInterval", n)
	}
	// The caps must also be reached, not only respected: the last day is full.
	if n, _ := maxInWindow(sorted(all), 24*time.Hour); n != lim.DailyCap {
		t.Errorf("busiest day holds %d sends, want the cap %d", n, lim.DailyCap)
	}
	f, err := grants[0].l.Forecast(context.Background(), "hot", t0.Add(time.Duration(clock.Load())*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if f.Queued > held || f.Queued == 0 {
		t.Errorf("forecast queued %d, held %d", f.Queued, held)
	}

	// Every held send comes back at its slot, in time order as a real clock brings them (from
	// any replica), and goes: consuming slots on time never breaks the calls' spacing.
	var back []grant
	for _, g := range grants {
		if g.slot.Held {
			back = append(back, g)
		}
	}
	slices.SortFunc(back, func(a, b grant) int { return a.slot.At.Compare(b.slot.At) })
	for i, g := range back {
		s, err := grants[i%replicas].l.ReserveSlot(context.Background(), g.rec, g.slot.At)
		if err != nil || !s.Go || !s.At.Equal(g.slot.At) {
			t.Errorf("%s back at its slot %v: %+v, %v", g.rec.SendID, g.slot.At, s, err)
		}
	}
}

func sorted(ts []time.Time) []time.Time {
	s := append([]time.Time(nil), ts...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Before(s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// maxIn is the most slots in any half-open window of length d.
func maxIn(ts []time.Time, d time.Duration) int {
	n, _ := maxInWindow(sorted(ts), d)
	return n
}

// TestHotAccountDoesNotDelayOthers: 10,000 queued sends on one account change nothing for
// another account, and a Reserve costs the same Redis commands with or without the backlog.
func TestHotAccountDoesNotDelayOthers(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	cold := config.Limits{MinInterval: 10 * sec, Jitter: 10 * sec, HourlyCap: 60, DailyCap: 300}
	hot := config.Limits{MinInterval: time.Second}
	l := New(rdb, Options{
		LimitsFor: func(a string) config.Limits {
			if a == "hot" {
				return hot
			}
			return cold
		},
		Rand: fixedRand(0.5),
	})

	costOf := func(rec *tasks.Record) map[string]int64 {
		t.Helper()
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		slotOf(t, l, rec, t0)
		return commandCalls(t, rdb)
	}
	costOf(reply("warm-up", "warm-up", "c")) // loads the script (EVAL after NOSCRIPT)
	coldBefore := costOf(reply("cold-0", "cold-0", "c"))
	hotSecond := func() map[string]int64 {
		slotOf(t, l, reply("hot-0", "hot", "c"), t0)
		return costOf(reply("hot-1", "hot", "c"))
	}()

	const backlog = 10_000
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 2 + w; i < backlog; i += 8 {
				if _, err := l.ReserveSlot(ctx, reply(fmt.Sprintf("hot-%d", i), "hot", "c"), t0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := rdb.ZCard(ctx, l.keys.slots("hot")).Val(); n != backlog {
		t.Fatalf("hot account holds %d slots, want %d", n, backlog)
	}

	// Cold accounts' first sends still go now.
	for i := 1; i <= 3; i++ {
		if s := slotOf(t, l, reply(fmt.Sprintf("cold-%d", i), fmt.Sprintf("cold-%d", i), "c"), t0); !s.Go || !s.At.Equal(t0) {
			t.Fatalf("cold account %d behind the hot backlog: %+v", i, s)
		}
	}
	coldAfter := costOf(reply("cold-9", "cold-9", "c"))
	hotLast := costOf(reply("hot-last", "hot", "c"))
	if !equalCalls(coldBefore, coldAfter) {
		t.Errorf("cold send cost %v without the backlog, %v with it", coldBefore, coldAfter)
	}
	// The 10,001st send of the hot account costs what its 2nd did: fixed commands, each a
	// rank lookup or single-member write, O(log n).
	if !equalCalls(hotSecond, hotLast) {
		t.Errorf("hot send cost %v at 2 queued, %v at %d", hotSecond, hotLast, backlog)
	}
	if f, err := l.Forecast(ctx, "hot", t0); err != nil || f.Queued != backlog {
		t.Errorf("forecast of the hot account: queued %d, %v", f.Queued, err)
	}
	t.Logf("commands per reserve: cold %v, hot at %d queued %v", coldAfter, backlog, hotLast)
}

// commandCalls reads INFO commandstats: calls per command (commands run by scripts included),
// without INFO and CONFIG themselves.
func commandCalls(t *testing.T, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":calls=")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		if name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		out[name] = n
	}
	return out
}

func equalCalls(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
