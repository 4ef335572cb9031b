// Command ratelimit benchmarks package ratelimit against its own throwaway redis-server, on a
// simulated clock (nothing waits for real time):
//
//   - precision: several replicas (separate clients and Limiters) race to reserve a full-day
//     backlog for each of -accounts accounts; every held send then comes back at its slot.
//     For each limit, the most sends any account has in any window, against the limit, and
//     the utilisation of the allowed rate over the simulated first day;
//   - isolation: a -hot-backlog of sends is reserved for one hot account, then the first sends
//     of fresh cold accounts: their delay behind the hot backlog;
//   - cost: Redis commands per reserved send (INFO commandstats deltas), client round trips
//     and commands run inside the scripts, without and with the hot backlog.
//
// Limits come from the usual SENDWORKER_RATE_* variables (default: the configuration's
// defaults); -hot-limits overrides the hot account's, in SENDWORKER_RATE_ACCOUNT_OVERRIDES
// syntax. Usage:
//
//	go run ./bench/ratelimit -accounts 50 -hot-backlog 100000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

func main() { os.Exit(run()) }

type options struct {
	accounts, hotBacklog, replicas, workers int
	demand, newRatio                        float64
	hotLimits                               string
	seed                                    uint64
}

func run() int {
	var o options
	flag.IntVar(&o.accounts, "accounts", 50, "cold accounts, each with a full-day backlog")
	flag.IntVar(&o.hotBacklog, "hot-backlog", 100_000, "sends queued on the hot account")
	flag.IntVar(&o.replicas, "replicas", 3, "Limiters on separate Redis clients, racing")
	flag.IntVar(&o.workers, "workers", 8, "goroutines per replica")
	flag.Float64Var(&o.demand, "demand", 1.5, "backlog per cold account, as a multiple of its theoretical daily maximum")
	flag.Float64Var(&o.newRatio, "new-ratio", 0.2, "share of chats_create in the backlogs")
	flag.StringVar(&o.hotLimits, "hot-limits", "", `the hot account's limits, e.g. "min_interval=1s,jitter=0s,hourly_cap=0,daily_cap=0" (default: as the others)`)
	flag.Uint64Var(&o.seed, "seed", 1, "random seed (jitter, operation mix)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// t0 is the simulated start; the backlogs are queued at t0.
var t0 = time.Date(2030, 3, 4, 9, 0, 0, 0, time.UTC)

const hotAccount = "hot"

type env struct {
	o       options
	cfg     *config.Config
	limiter []*ratelimit.Limiter
	stats   *redis.Client
}

func bench(ctx context.Context, o options) error {
	cfg, err := loadConfig(o.hotLimits)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-ratelimit")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := redisproc.Start(ctx, redisproc.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer srv.Kill()

	e := &env{o: o, cfg: cfg, stats: redis.NewClient(&redis.Options{Addr: srv.Addr()})}
	defer e.stats.Close()
	for r := range o.replicas {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: o.workers + 2})
		defer rdb.Close()
		rnd := rand.New(rand.NewPCG(o.seed, uint64(r)))
		e.limiter = append(e.limiter, ratelimit.New(rdb, ratelimit.Options{LimitsFor: cfg.LimitsFor, Rand: rnd.Float64}))
	}
	lim := cfg.Rate.Limits
	fmt.Printf("redis %s, %d replicas × %d goroutines, limits: min_interval=%v jitter=%v hourly=%d daily=%d new_chats=%d/h %d/day\n",
		srv.Addr(), o.replicas, o.workers, lim.MinInterval, lim.Jitter, lim.HourlyCap, lim.DailyCap,
		lim.NewChatsHourlyCap, lim.NewChatsDailyCap)
	if o.hotLimits != "" {
		h := cfg.LimitsFor(hotAccount)
		fmt.Printf("hot account limits: min_interval=%v jitter=%v hourly=%d daily=%d\n", h.MinInterval, h.Jitter, h.HourlyCap, h.DailyCap)
	}

	// 1. Precision, utilisation and cost without a hot backlog.
	before, err := e.fullDay(ctx, "a")
	if err != nil {
		return err
	}

	// 2. The hot backlog.
	hot, err := e.hotBacklog(ctx)
	if err != nil {
		return err
	}

	// 3. Fresh cold accounts behind it: first sends, then the same full-day workload.
	first, err := e.firstSends(ctx, "b")
	if err != nil {
		return err
	}
	after, err := e.fullDay(ctx, "c")
	if err != nil {
		return err
	}
	e.report(before, after, hot, first)
	return nil
}

func loadConfig(hotLimits string) (*config.Config, error) {
	lookup := func(name string) (string, bool) {
		switch name {
		case "SENDWORKER_DEV":
			return "true", true
		case "SENDWORKER_RATE_ACCOUNT_OVERRIDES":
			if hotLimits != "" {
				return hotAccount + ":" + hotLimits, true
			}
		}
		return os.LookupEnv(name)
	}
	cfg, err := config.Load(lookup, os.Environ())
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// dayResult is one full-day run over fresh accounts.
type dayResult struct {
	accounts, sends        int
	reserve, consume       cost
	worst                  windows // the most any account reached, per limit
	util, utilMin, utilNew float64 // day-1 slots / theoretical maximum (mean, min; new chats mean)
	forfeited              int
	wall                   time.Duration
}

type windows struct{ interval, hour, day, newHour, newDay int }

type cost struct {
	calls, roundTrips, commands int64
	scriptUsec                  int64 // EVALSHA/EVAL usec: the scripts' Redis CPU, their commands included
}

func (c cost) perCall() (float64, float64) {
	if c.calls == 0 {
		return 0, 0
	}
	return float64(c.roundTrips) / float64(c.calls), float64(c.commands) / float64(c.calls)
}

type grant struct {
	rec  *tasks.Record
	slot ratelimit.Slot
}

// fullDay queues demand × the theoretical daily maximum on each of o.accounts fresh accounts
// at t0 (replicas racing), brings every held send back at its slot, and measures.
func (e *env) fullDay(ctx context.Context, tag string) (dayResult, error) {
	lim := e.cfg.Rate.Limits
	perAccount := int(math.Ceil(e.o.demand * float64(theoreticalDay(lim))))
	rnd := rand.New(rand.NewPCG(e.o.seed, 99))
	var recs []*tasks.Record
	for a := range e.o.accounts {
		acct := fmt.Sprintf("%s-%d", tag, a)
		for i := range perAccount {
			recs = append(recs, send(fmt.Sprintf("%s-%d", acct, i), acct, rnd.Float64() < e.o.newRatio))
		}
	}
	// Interleave accounts, as a Sequencer's enqueue order would.
	rnd.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })

	res := dayResult{accounts: e.o.accounts, sends: len(recs)}
	start := time.Now()
	grants, c, err := e.reserveAll(ctx, recs, func(*tasks.Record) time.Time { return t0 })
	if err != nil {
		return res, err
	}
	res.reserve = c
	// Held sends come back at their slot, through any replica.
	var back []*tasks.Record
	at := map[string]time.Time{}
	for _, g := range grants {
		if g.slot.Held {
			back = append(back, g.rec)
			at[g.rec.SendID] = g.slot.At
		}
	}
	consumed, c, err := e.comeBack(ctx, back, at)
	if err != nil {
		return res, err
	}
	res.consume = c
	res.wall = time.Since(start)

	slots := map[string][]time.Time{} // per account, every slot that went
	newSlots := map[string][]time.Time{}
	record := func(g grant) {
		a := g.rec.Request.AccountID
		slots[a] = append(slots[a], g.slot.At)
		if g.rec.Request.Operation == tasks.OpCreateChat {
			newSlots[a] = append(newSlots[a], g.slot.At)
		}
	}
	for _, g := range grants {
		if g.slot.Go {
			record(g)
		}
	}
	for _, g := range consumed {
		if g.slot.Go && g.slot.At.Equal(at[g.rec.SendID]) {
			record(g)
		} else {
			res.forfeited++
		}
	}
	theory, theoryNew := theoreticalDay(lim), theoreticalNewDay(lim)
	res.utilMin = math.Inf(1)
	for a, s := range slots {
		slices.SortFunc(s, func(x, y time.Time) int { return x.Compare(y) })
		ns := newSlots[a]
		slices.SortFunc(ns, func(x, y time.Time) int { return x.Compare(y) })
		w := windows{
			interval: maxIn(s, lim.MinInterval), hour: maxIn(s, time.Hour), day: maxIn(s, 24*time.Hour),
			newHour: maxIn(ns, time.Hour), newDay: maxIn(ns, 24*time.Hour),
		}
		res.worst = windows{max(res.worst.interval, w.interval), max(res.worst.hour, w.hour), max(res.worst.day, w.day),
			max(res.worst.newHour, w.newHour), max(res.worst.newDay, w.newDay)}
		u := float64(inFirstDay(s)) / float64(theory)
		res.util += u / float64(len(slots))
		res.utilMin = min(res.utilMin, u)
		if theoryNew > 0 {
			res.utilNew += float64(inFirstDay(ns)) / float64(theoryNew) / float64(len(slots))
		}
	}
	return res, nil
}

type hotResult struct {
	sends, held, beyond int
	last                time.Time
	all, tail           cost // every reserve; the last 1% of them
	wall                time.Duration
}

// hotBacklog queues o.hotBacklog sends on the hot account at t0.
func (e *env) hotBacklog(ctx context.Context) (hotResult, error) {
	n := e.o.hotBacklog
	res := hotResult{sends: n}
	recs := make([]*tasks.Record, n)
	for i := range recs {
		recs[i] = send(fmt.Sprintf("hot-%d", i), hotAccount, false)
	}
	tail := max(1, n/100)
	start := time.Now()
	grants, c, err := e.reserveAll(ctx, recs[:n-tail], func(*tasks.Record) time.Time { return t0 })
	if err != nil {
		return res, err
	}
	tg, tc, err := e.reserveAll(ctx, recs[n-tail:], func(*tasks.Record) time.Time { return t0 })
	if err != nil {
		return res, err
	}
	res.wall = time.Since(start)
	res.tail = tc
	res.all = cost{c.calls + tc.calls, c.roundTrips + tc.roundTrips, c.commands + tc.commands, c.scriptUsec + tc.scriptUsec}
	for _, g := range append(grants, tg...) {
		switch {
		case g.slot.Held || g.slot.Go:
			res.held++
			if g.slot.At.After(res.last) {
				res.last = g.slot.At
			}
		default:
			res.beyond++
		}
	}
	return res, nil
}

type firstResult struct {
	accounts      int
	maxDelay      time.Duration
	goNow         int
	cost          cost
	p50, p99, max time.Duration
}

// firstSends reserves the first send of o.accounts fresh accounts, behind the hot backlog.
func (e *env) firstSends(ctx context.Context, tag string) (firstResult, error) {
	res := firstResult{accounts: e.o.accounts}
	before, err := e.commandStats(ctx)
	if err != nil {
		return res, err
	}
	var lat []time.Duration
	for a := range e.o.accounts {
		acct := fmt.Sprintf("%s-%d", tag, a)
		start := time.Now()
		s, err := e.limiter[a%len(e.limiter)].ReserveSlot(ctx, send(acct+"-0", acct, false), t0)
		if err != nil {
			return res, err
		}
		lat = append(lat, time.Since(start))
		if s.Go {
			res.goNow++
		} else {
			res.maxDelay = max(res.maxDelay, s.At.Sub(t0))
		}
	}
	after, err := e.commandStats(ctx)
	if err != nil {
		return res, err
	}
	res.cost = diff(before, after, int64(e.o.accounts))
	slices.Sort(lat)
	res.p50, res.p99, res.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	return res, nil
}

// reserveAll runs ReserveSlot for every record, each at when(rec), spread over the replicas'
// goroutines, and returns the answers and their Redis cost.
func (e *env) reserveAll(ctx context.Context, recs []*tasks.Record, when func(*tasks.Record) time.Time) ([]grant, cost, error) {
	before, err := e.commandStats(ctx)
	if err != nil {
		return nil, cost{}, err
	}
	jobs := make(chan *tasks.Record)
	var mu sync.Mutex
	var out []grant
	var firstErr error
	var wg sync.WaitGroup
	for _, l := range e.limiter {
		for range e.o.workers {
			wg.Go(func() {
				for rec := range jobs {
					s, err := l.ReserveSlot(ctx, rec, when(rec))
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					out = append(out, grant{rec, s})
					mu.Unlock()
				}
			})
		}
	}
	for _, r := range recs {
		jobs <- r
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, cost{}, firstErr
	}
	c, err := e.costSince(ctx, before, len(recs))
	return out, c, err
}

// comeBack brings every held send back at its slot as a real clock would: each account's
// sends one after the other in slot order (a later slot never comes back before an earlier
// one went: the limiter spaces the calls too, and forfeits a slot reached after a later
// one was consumed), accounts in parallel, each call through the next replica.
func (e *env) comeBack(ctx context.Context, recs []*tasks.Record, at map[string]time.Time) ([]grant, cost, error) {
	before, err := e.commandStats(ctx)
	if err != nil {
		return nil, cost{}, err
	}
	byAcct := map[string][]*tasks.Record{}
	for _, r := range recs {
		a := r.Request.AccountID
		byAcct[a] = append(byAcct[a], r)
	}
	jobs := make(chan []*tasks.Record)
	var mu sync.Mutex
	var out []grant
	var firstErr error
	var wg sync.WaitGroup
	for range len(e.limiter) * e.o.workers {
		wg.Go(func() {
			for list := range jobs {
				for i, rec := range list {
					s, err := e.limiter[i%len(e.limiter)].ReserveSlot(ctx, rec, at[rec.SendID])
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = err
					}
					out = append(out, grant{rec, s})
					mu.Unlock()
				}
			}
		})
	}
	for _, a := range slices.Sorted(maps.Keys(byAcct)) {
		list := byAcct[a]
		slices.SortStableFunc(list, func(x, y *tasks.Record) int { return at[x.SendID].Compare(at[y.SendID]) })
		jobs <- list
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, cost{}, firstErr
	}
	c, err := e.costSince(ctx, before, len(recs))
	return out, c, err
}

// costSince is the Redis cost per call of the calls made since before (commandStats), n calls.
func (e *env) costSince(ctx context.Context, before map[string]int64, n int) (cost, error) {
	after, err := e.commandStats(ctx)
	if err != nil {
		return cost{}, err
	}
	return diff(before, after, int64(n)), nil
}

// commandStats reads INFO commandstats: calls per command, scripts' own commands included.
func (e *env) commandStats(ctx context.Context) (map[string]int64, error) {
	info, err := e.stats.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":calls=")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		fields := strings.Split(rest, ",")
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		out[name] = n
		if name == "evalsha" || name == "eval" || name == "fcall" {
			for _, f := range fields[1:] {
				if v, ok := strings.CutPrefix(f, "usec="); ok {
					u, _ := strconv.ParseInt(v, 10, 64)
					out[name+".usec"] = u
				}
			}
		}
	}
	return out, nil
}

// diff is the cost of calls Reserve calls between two commandstats readings: round trips are
// the script calls (FCALL, EVALSHA, EVAL), commands everything else but our own INFO.
func diff(before, after map[string]int64, calls int64) cost {
	c := cost{calls: calls}
	for name, n := range after {
		d := n - before[name]
		switch name {
		case "info":
		case "evalsha", "eval", "fcall":
			c.roundTrips += d
		case "evalsha.usec", "eval.usec", "fcall.usec":
			c.scriptUsec += d
		default:
			c.commands += d
		}
	}
	return c
}

func (e *env) report(before, after dayResult, hot hotResult, first firstResult) {
	lim := e.cfg.Rate.Limits
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Printf("\nPrecision: %d accounts × %d queued sends (%.0f%% chats_create), %d replicas racing; every held send back at its slot\n",
		before.accounts, before.sends/before.accounts, e.o.newRatio*100, e.o.replicas)
	fmt.Fprintln(w, "limit\twindow\tlimit value\tmost in any window (no hot backlog)\t(with hot backlog)\t")
	row := func(name, window string, limit, a, b int) {
		v := strconv.Itoa(limit)
		if limit == 0 {
			v = "none"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t\n", name, window, v, a, b)
	}
	row("min interval", lim.MinInterval.String(), 1, before.worst.interval, after.worst.interval)
	row("hourly cap", "1h", lim.HourlyCap, before.worst.hour, after.worst.hour)
	row("daily cap", "24h", lim.DailyCap, before.worst.day, after.worst.day)
	row("new chats hourly", "1h", lim.NewChatsHourlyCap, before.worst.newHour, after.worst.newHour)
	row("new chats daily", "24h", lim.NewChatsDailyCap, before.worst.newDay, after.worst.newDay)
	w.Flush()
	fmt.Printf("utilisation of the allowed rate over day 1 (slots / theoretical max %d): mean %.1f%%, worst account %.1f%%; new chats (max %d): mean %.1f%%\n",
		theoreticalDay(lim), before.util*100, before.utilMin*100, theoreticalNewDay(lim), before.utilNew*100)
	fmt.Printf("forfeited on return: %d / %d; wall time %v (%d reserves + returns)\n",
		before.forfeited+after.forfeited, before.sends+after.sends, before.wall.Round(time.Millisecond), before.reserve.calls+before.consume.calls)

	fmt.Printf("\nHot backlog: %d sends on one account in %v: %d hold a slot (last at t0+%v), %d beyond the %v horizon (hold nothing)\n",
		hot.sends, hot.wall.Round(time.Millisecond), hot.held, hot.last.Sub(t0).Round(time.Second), hot.beyond, ratelimit.DefaultHorizon)
	fmt.Printf("Cold accounts behind it: %d/%d first sends go now, max delay %v; Reserve latency p50 %v p99 %v max %v\n",
		first.goNow, first.accounts, first.maxDelay, first.p50.Round(time.Microsecond), first.p99.Round(time.Microsecond), first.max.Round(time.Microsecond))

	fmt.Println("\nRedis cost per Reserve call (INFO commandstats deltas)")
	fmt.Fprintln(w, "phase\tcalls\tround trips/call\tcommands in scripts/call\tscript Redis CPU µs/call\t")
	line := func(name string, c cost) {
		rt, cmd := c.perCall()
		fmt.Fprintf(w, "%s\t%d\t%.2f\t%.1f\t%.1f\t\n", name, c.calls, rt, cmd, float64(c.scriptUsec)/float64(max(c.calls, 1)))
	}
	line("queue a send, no hot backlog", before.reserve)
	line("come back at the slot, no hot backlog", before.consume)
	line(fmt.Sprintf("hot account, all %d", hot.sends), hot.all)
	line(fmt.Sprintf("hot account, last %d (%d+ already queued)", hot.tail.calls, min(hot.held, hot.sends-int(hot.tail.calls))), hot.tail)
	line("cold first send, behind hot backlog", first.cost)
	line("queue a send, with hot backlog", after.reserve)
	line("come back at the slot, with hot backlog", after.consume)
	w.Flush()
	total := before.reserve.commands + before.reserve.roundTrips + before.consume.commands + before.consume.roundTrips
	usec := before.reserve.scriptUsec + before.consume.scriptUsec
	fmt.Printf("per send made (queue + come back, no hot backlog): %.1f commands, %.1f µs of script Redis CPU\n",
		float64(total)/float64(before.sends), float64(usec)/float64(before.sends))
}

func send(id, acct string, newChat bool) *tasks.Record {
	r := &tasks.Record{SendID: id, Request: tasks.SendRequest{
		SendID: id, Operation: tasks.OpSendMessage, AccountID: acct, ChatID: "chat-" + id}}
	if newChat {
		r.Request.Operation, r.Request.ChatID, r.Request.AttendeeIDs = tasks.OpCreateChat, "", []string{"att-" + id}
	}
	return r
}

// theoreticalDay is the most sends the limits allow in a day: the tightest of the daily cap,
// 24 hourly caps and the spacing (min interval + mean jitter).
func theoreticalDay(l config.Limits) int {
	best := math.MaxInt
	if l.DailyCap > 0 {
		best = l.DailyCap
	}
	if l.HourlyCap > 0 {
		best = min(best, 24*l.HourlyCap)
	}
	if gap := l.MinInterval + l.Jitter/2; gap > 0 {
		best = min(best, int(24*time.Hour/gap))
	}
	if best == math.MaxInt {
		best = 10_000
	}
	return best
}

func theoreticalNewDay(l config.Limits) int {
	best := 0
	if l.NewChatsDailyCap > 0 {
		best = l.NewChatsDailyCap
	}
	if l.NewChatsHourlyCap > 0 && (best == 0 || 24*l.NewChatsHourlyCap < best) {
		best = 24 * l.NewChatsHourlyCap
	}
	return best
}

// maxIn is the most of the sorted times in any window (end-d, end].
func maxIn(s []time.Time, d time.Duration) int {
	best, lo := 0, 0
	for hi := range s {
		for d > 0 && !s[lo].After(s[hi].Add(-d)) {
			lo++
		}
		if d == 0 {
			lo = hi
		}
		best = max(best, hi-lo+1)
	}
	return best
}

func inFirstDay(s []time.Time) int {
	n := 0
	for _, t := range s {
		if t.Before(t0.Add(24 * time.Hour)) {
			n++
		}
	}
	return n
}
