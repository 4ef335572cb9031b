package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

// The limits of the worker processes of TestLimitsAcrossProcesses: every account's sends at
// least procMinInterval apart, plus a jitter of up to procJitter; no caps.
//
// The limiter spaces slots by MinInterval + jitter exactly; a send reaches the provider a few
// milliseconds after its slot (1.5–3 ms on an idle machine: the limiter, global rate and
// BeginAttempt scripts, then HTTP), and on a loaded CI machine that delay varies by tens of
// milliseconds (960 ms gaps were seen with a 50 ms floor at load average 15). With a jitter
// drawn from [0, procJitter], that scheduling noise, not the limiter, could put two deliveries
// under MinInterval. So the processes draw the jitter from [procJitterFloor, procJitter]: the
// test then checks MinInterval itself at the provider.
const (
	procMinInterval = time.Second
	procJitter      = 500 * time.Millisecond
	procJitterFloor = 200 * time.Millisecond
	procGlobalRPS   = 200
)

// procLimiter is the Redis rate limiter of a worker process, as the daemon builds it.
func procLimiter(rdb redis.UniversalClient, log *zap.Logger) *ratelimit.Limiter {
	floor := float64(procJitterFloor) / float64(procJitter)
	return ratelimit.New(rdb, ratelimit.Options{
		LimitsFor: func(string) config.Limits {
			return config.Limits{MinInterval: procMinInterval, Jitter: procJitter}
		},
		GlobalRPS: procGlobalRPS,
		Rand:      func() float64 { return floor + (1-floor)*rand.Float64() },
		Logger:    log.Named("ratelimit"),
	})
}

// TestLimitsAcrossProcesses (guarantee 6, limits hold): three worker processes share one Redis and one
// provider (wasim over HTTP), each with its own Redis rate limiter. A backlog of 20 sends on one
// hot account and one send on each of 5 cold accounts are approved at once:
//   - the hot account's sends reach the provider at least MinInterval apart, whichever process
//     sends them;
//   - every cold account's send is delivered within a few seconds, while the hot backlog is
//     still draining: the backlog delays no other account;
//   - a send deferred for its slot does no provider read until its slot comes (chats_get is
//     read once per send, not once per deferral);
//   - the processes share the work.
func TestLimitsAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("about 30 s: drains a rate-limited backlog")
	}
	t.Parallel()
	const hot, cold = 20, 5
	coldAccount := func(i int) string { return fmt.Sprintf("acc-cold-%d", i) }
	coldChat := func(i int) string { return fmt.Sprintf("chat-cold-%d", i) }
	e := newEnv(t, func(c *envConfig) {
		c.noStart = true
		c.seed = func(s *wasim.Seed) {
			for i := range cold {
				pid := fmt.Sprintf("3369000000%d@s.whatsapp.net", i)
				s.Accounts = append(s.Accounts, wasim.SeedAccount{
					ID: coldAccount(i), Name: "Cold " + coldAccount(i), PhoneNumber: fmt.Sprintf("3375550020%d", i),
					Contacts: []wasim.SeedContact{{ID: fmt.Sprintf("att-cold-%d", i), ProviderID: pid, Name: "C"}},
					Chats: []wasim.SeedChat{{ID: coldChat(i), Type: 0, Attendees: []string{pid},
						Messages: []wasim.SeedMessage{{ID: fmt.Sprintf("m-cold-%d", i), Text: "hello", Ago: "1h"}}}},
				})
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.approval.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	var procs []*workerProcess
	for range 3 {
		p := startWorkerProcess(t, e, procRateEnv+"=1")
		procs = append(procs, p)
		defer p.kill()
	}

	start := time.Now()
	var hotIDs, coldIDs []string
	approvedAt := map[string]time.Time{}
	for i := range hot {
		id := newID("hot")
		e.submit(message(id, accA, "chat-x"+twoDigits(i)))
		hotIDs = append(hotIDs, id)
		approvedAt[id] = time.Now()
	}
	for i := range cold {
		id := newID("cold")
		e.submit(message(id, coldAccount(i), coldChat(i)))
		coldIDs = append(coldIDs, id)
		approvedAt[id] = time.Now()
	}
	for _, id := range append(slices.Clone(coldIDs), hotIDs...) {
		rec := e.waitTerminal(id, 60*time.Second)
		if rec.State != tasks.StateSent || applied(e.deliveries(id)) != 1 {
			t.Fatalf("%s: %s %s, %d applied deliveries; %s", id, rec.State, rec.Reason, applied(e.deliveries(id)), historyString(rec))
		}
	}
	drained := time.Since(start)

	// The hot account: sorted by arrival at the provider, consecutive sends at least
	// MinInterval apart (so any two are).
	var hotAt []time.Time
	for _, d := range e.sim.Sim().Deliveries() {
		if d.AccountID == accA && d.Applied {
			hotAt = append(hotAt, d.At)
		}
	}
	slices.SortFunc(hotAt, func(a, b time.Time) int { return a.Compare(b) })
	if len(hotAt) != hot {
		t.Fatalf("%d hot deliveries, want %d", len(hotAt), hot)
	}
	var gaps []string
	minGap := time.Hour
	for i := 1; i < len(hotAt); i++ {
		gap := hotAt[i].Sub(hotAt[i-1])
		minGap = min(minGap, gap)
		gaps = append(gaps, gap.Round(time.Millisecond).String())
		if gap < procMinInterval {
			t.Errorf("hot sends %d and %d reached the provider %s apart, less than MinInterval %s", i-1, i, gap, procMinInterval)
		}
	}
	t.Logf("hot gaps: %s", strings.Join(gaps, " "))

	// The cold accounts: each delivered within a few seconds of its approval, long before
	// the hot backlog drained.
	for i, id := range coldIDs {
		ds := e.deliveries(id)
		after := ds[0].At.Sub(approvedAt[id])
		if after > 3*time.Second {
			t.Errorf("cold account %s: delivered %s after approval", coldAccount(i), after)
		}
		if !ds[0].At.Before(hotAt[hot/2]) {
			t.Errorf("cold account %s: delivered at %s, after half the hot backlog (%s)", coldAccount(i), ds[0].At, hotAt[hot/2])
		}
	}

	// Limiter first: one chats_get per send (its guard, when its slot has come), however
	// many times it was deferred.
	chatReads := 0
	for _, n := range e.sim.Sim().Stats().Requests["chats_get"] {
		chatReads += n
	}
	if chatReads != hot+cold {
		t.Errorf("%d chats_get for %d sends: deferred sends read the provider", chatReads, hot+cold)
	}
	// How far from its slot each deferred hot send reached the provider (the slot is SlotLead
	// after the time its rate_limit wait ended).
	deferrals := 0
	var lateMin, lateMax time.Duration
	for _, id := range hotIDs {
		rec := e.get(id)
		deferrals += waitsFor(rec, tasks.ReasonWaitRateLimit)
		var until time.Time
		for _, ev := range rec.History {
			if ev.State == tasks.StateWaiting && ev.Reason == tasks.ReasonWaitRateLimit {
				until, _ = time.Parse(time.RFC3339Nano, strings.TrimPrefix(ev.Detail, "until "))
			}
		}
		if until.IsZero() {
			continue
		}
		late := e.deliveries(id)[0].At.Sub(until.Add(DefaultSlotLead))
		if lateMin == 0 && lateMax == 0 {
			lateMin, lateMax = late, late
		}
		lateMin, lateMax = min(lateMin, late), max(lateMax, late)
	}
	t.Logf("deferred hot sends reached the provider %s to %s after their slots", lateMin, lateMax)

	// The processes shared the work.
	busy := 0
	for i, p := range procs {
		n := strings.Count(p.output(), `"msg":"send finished"`)
		if n > 0 {
			busy++
		}
		t.Logf("process %d finished %d sends", i, n)
	}
	if busy < 2 {
		t.Errorf("only %d of 3 processes sent anything", busy)
	}
	t.Logf("%d hot + %d cold sends in %s; %d rate_limit deferrals; smallest hot gap %s",
		hot, cold, drained.Round(100*time.Millisecond), deferrals, minGap.Round(time.Millisecond))
	if t.Failed() {
		for i, p := range procs {
			t.Logf("process %d output:\n%s", i, p.output())
		}
	}
}
