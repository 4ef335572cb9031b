package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/tasks"
)

// TestRandomTimelines drives one account with random limits through random arrivals,
// returns at the slot (on time or late), penalties and cancels, and checks every limit over
// the slots of all sends that went or still hold a slot at the end.
func TestRandomTimelines(t *testing.T) {
	_, rdb := startRedis(t)
	ctx := context.Background()
	for seed := range uint64(24) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 7))
			lim := config.Limits{
				MinInterval: time.Duration(rnd.IntN(6)) * sec, Jitter: time.Duration(rnd.IntN(6)) * sec,
				HourlyCap: rnd.IntN(12), DailyCap: rnd.IntN(40),
				NewChatsHourlyCap: rnd.IntN(4), NewChatsDailyCap: rnd.IntN(10),
				RecipientCooldown: time.Duration(rnd.IntN(3)) * 10 * time.Minute,
			}
			if rnd.IntN(3) == 0 {
				lim.WarmupStart, lim.WarmupStep = 1+rnd.IntN(5), rnd.IntN(3)
			}
			born := t0.Add(-time.Duration(rnd.IntN(48)) * time.Hour)
			l := newLimiter(t, rdb, lim, func(o *Options) {
				o.Rand = rnd.Float64
				o.AccountCreatedAt = func(context.Context, string) (time.Time, error) { return born, nil }
			})
			acct := fmt.Sprintf("prop-%d", seed)

			type pending struct {
				rec  *tasks.Record
				at   time.Time
				held bool
			}
			var queue []pending
			sent := map[string]time.Time{} // send id -> slot it went at
			recs := map[string]*tasks.Record{}
			now := t0
			gap := 60 + rnd.IntN(3600) // mean seconds between arrivals: busy to quiet accounts
			ask := func(rec *tasks.Record, at time.Time) {
				s := slotOf(t, l, rec, at)
				switch {
				case s.Go:
					if _, dup := sent[rec.SendID]; dup {
						t.Fatalf("%s went twice", rec.SendID)
					}
					sent[rec.SendID] = s.At
				default:
					queue = append(queue, pending{rec, s.At, s.Held})
				}
			}
			for i := range 400 {
				now = now.Add(time.Duration(rnd.IntN(2*gap)) * sec)
				// Sends due come back, most on time, some late.
				var later []pending
				for _, p := range queue {
					if p.at.After(now) {
						later = append(later, p)
					}
				}
				due := queue
				queue = later
				for _, p := range due {
					if p.at.After(now) {
						continue
					}
					back := p.at
					if rnd.IntN(5) == 0 {
						back = now // late, maybe beyond the grace
					}
					ask(p.rec, back)
				}
				switch r := rnd.IntN(40); {
				case r == 0:
					if err := l.Penalize(ctx, acct, now.Add(time.Duration(rnd.IntN(30))*time.Minute)); err != nil {
						t.Fatal(err)
					}
				case r == 1 && len(queue) > 0:
					k := rnd.IntN(len(queue))
					if _, err := l.Cancel(ctx, queue[k].rec); err != nil {
						t.Fatal(err)
					}
					queue = append(queue[:k], queue[k+1:]...)
				default:
					id := fmt.Sprintf("%s-%d", acct, i)
					rec := reply(id, acct, fmt.Sprintf("chat-%d", rnd.IntN(8)))
					if rnd.IntN(3) == 0 {
						rec = newChat(id, acct, fmt.Sprintf("att-%d", rnd.IntN(8)))
					}
					recs[id] = rec
					ask(rec, now)
				}
			}
			// Everything that went, and every slot still held, must respect the limits.
			slots := map[string]time.Time{}
			for id, at := range sent {
				slots[id] = at
			}
			for _, p := range queue {
				if p.held {
					slots[p.rec.SendID] = p.at
				}
			}
			var all, created []time.Time
			last := map[string]time.Time{}
			var ids []string
			for id := range slots {
				ids = append(ids, id)
			}
			byTime(ids, slots)
			for _, id := range ids {
				at, rec := slots[id], recs[id]
				all = append(all, at)
				if rec.Request.Operation == tasks.OpCreateChat {
					created = append(created, at)
				}
				if lim.RecipientCooldown > 0 {
					for _, r := range append([]string{"c:" + rec.Request.ChatID}, prefixed("a:", rec.Request.AttendeeIDs)...) {
						if r == "c:" {
							continue
						}
						if prev, ok := last[r]; ok && at.Sub(prev) < lim.RecipientCooldown {
							t.Errorf("%s: two sends to %s %v apart", id, r, at.Sub(prev))
						}
						last[r] = at
					}
				}
			}
			if err := windowViolation(all, lim.MinInterval, lim.HourlyCap, 0); err != nil {
				t.Errorf("limits %+v: %v", lim, err)
			}
			checkDaily(t, all, lim, born)
			if err := windowViolation(created, 0, lim.NewChatsHourlyCap, lim.NewChatsDailyCap); err != nil {
				t.Errorf("new chats, limits %+v: %v", lim, err)
			}
			if len(sent) == 0 {
				t.Errorf("no send went")
			}
			t.Logf("limits %+v: %d went, %d waiting", lim, len(sent), len(queue))
		})
	}
}

// checkDaily checks, for each slot, the daily cap in force at it (warm-up included) over
// (at-24h, at].
func checkDaily(t *testing.T, all []time.Time, lim config.Limits, born time.Time) {
	t.Helper()
	s := sorted(all)
	lo := 0
	for hi := range s {
		for !s[lo].After(s[hi].Add(-24 * time.Hour)) {
			lo++
		}
		limit := lim.DailyCap
		if lim.WarmupStart > 0 {
			d := max(0, int(s[hi].Sub(born)/(24*time.Hour)))
			if w := lim.WarmupStart + d*lim.WarmupStep; limit == 0 || w < limit {
				limit = w
			}
		}
		if limit > 0 && hi-lo+1 > limit {
			t.Errorf("%d slots in the day ending %v, cap %d", hi-lo+1, s[hi], limit)
		}
	}
}

func prefixed(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}

func byTime(ids []string, at map[string]time.Time) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && at[ids[j]].Before(at[ids[j-1]]); j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}
