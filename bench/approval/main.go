// Command approval measures the approval stage against a large backlog: it
// fills a throwaway redis-server with N pending sends (Service.Enqueue), then
// measures enqueue/s, approve/s and list latency (first and deep cursor
// pages, by state and by account+state), each beside a bare asynq baseline on
// the same Redis in the same run (asynq.Client.Enqueue of a small task with
// the same parallelism; Inspector.ListPendingTasks over a queue of N tasks).
// It also reports Redis memory per pending send beside asynq's per pending
// task carrying the same request bytes (INFO used_memory delta ÷ N around
// each seeding), with a breakdown of one send's keys.
//
//	go run ./bench/approval -n 1000000
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

const baselineQueue = "bench-baseline"

type config struct {
	n, ops, conc, accounts, reps int
	// listpackValue, when > 0, sets Redis's hash-max-listpack-value before
	// seeding: an experiment that shows what a record kept in listpack
	// encoding would take (the daemon does not change Redis's config).
	listpackValue int
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 1_000_000, "pending sends to seed (and asynq tasks in the baseline queue)")
	flag.IntVar(&c.ops, "ops", 20_000, "operations per measured phase")
	flag.IntVar(&c.conc, "c", 32, "parallel callers")
	flag.IntVar(&c.accounts, "accounts", 100, "accounts the sends are spread over")
	flag.IntVar(&c.reps, "reps", 200, "repetitions of each list query")
	flag.IntVar(&c.listpackValue, "hash-listpack-value", 0, "experiment: CONFIG SET hash-max-listpack-value to this before seeding (0 = Redis's default, as deployed)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-approval-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	proc, err := redisproc.Start(ctx, redisproc.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer func() { _ = proc.Kill() }()

	rdb := redis.NewClient(&redis.Options{Addr: proc.Addr(), PoolSize: c.conc * 2})
	defer rdb.Close()
	l := ledger.New(rdb, ledger.Options{})
	redisOpt := asynq.RedisClientOpt{Addr: proc.Addr(), PoolSize: c.conc * 2}
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	insp := asynq.NewInspector(redisOpt)
	defer insp.Close()
	svc := approval.New(l, client, approval.Options{DefaultDeadline: 7 * 24 * time.Hour})

	if c.listpackValue > 0 {
		if err := rdb.ConfigSet(ctx, "hash-max-listpack-value", strconv.Itoa(c.listpackValue)).Err(); err != nil {
			return fmt.Errorf("experiment hash-max-listpack-value: %w", err)
		}
	}
	version := rdb.InfoMap(ctx, "server").Item("Server", "redis_version")
	fmt.Printf("sendworker approval benchmark: %d pending sends over %d accounts, %d ops per phase, %d parallel callers, GOMAXPROCS=%d, redis %s\n\n",
		c.n, c.accounts, c.ops, c.conc, runtime.GOMAXPROCS(0), version)

	var rows []row
	enqueueSend := func(prefix string) func(int) error {
		return func(i int) error {
			_, _, err := svc.Enqueue(ctx, sendRequest(prefix, i, c.accounts), "bench-scheduler")
			return err
		}
	}
	// The baseline task carries what a pending send holds: the request as JSON
	// (text, metadata, ids), so the memory per item compares like with like.
	payload, err := json.Marshal(sendRequest("bench", 0, c.accounts))
	if err != nil {
		return err
	}
	enqueueTask := func(int) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", payload), asynq.Queue(baselineQueue))
		return err
	}

	mem0, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seeding %d sends...\n", c.n)
	seed, err := measure(c.n, c.conc, enqueueSend("seed"))
	if err != nil {
		return fmt.Errorf("seed sends: %w", err)
	}
	mem1, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seeding %d asynq tasks...\n", c.n)
	seedBase, err := measure(c.n, c.conc, enqueueTask)
	if err != nil {
		return fmt.Errorf("seed asynq: %w", err)
	}
	mem2, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	rows = append(rows, row{fmt.Sprintf("enqueue, seeding 0→%d", c.n), seed.rate(), seedBase.rate()})
	perSend, perTask := float64(mem1-mem0)/float64(c.n), float64(mem2-mem1)/float64(c.n)
	rows = append(rows, row{"Redis memory per pending item (used_memory delta ÷ n)",
		fmt.Sprintf("%.0f B per send", perSend), fmt.Sprintf("%.0f B per task (%.1f× less)", perTask, perSend/perTask)})
	breakdown, err := sendBreakdown(ctx, rdb, l.Keys(), sendRequest("seed", c.n/2, c.accounts), c.n, c.accounts, perSend)
	if err != nil {
		return err
	}

	// Each enqueue is one script call (EVALSHA) on either side: Redis's own time per call, which
	// the callers' share of the CPUs does not change as much as the rates.
	var enq, enqBase result
	var scriptUs, scriptUsBase float64
	for _, ph := range []struct {
		fn  func(int) error
		out *result
		us  *float64
	}{{enqueueSend("more"), &enq, &scriptUs}, {enqueueTask, &enqBase, &scriptUsBase}} {
		if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
			return err
		}
		if *ph.out, err = measure(c.ops, c.conc, ph.fn); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		if *ph.us, err = scriptMicros(ctx, rdb); err != nil {
			return err
		}
	}
	rows = append(rows, row{fmt.Sprintf("enqueue (Service.Enqueue) at %d", c.n), enq.rate(), enqBase.rate()})
	rows = append(rows, row{fmt.Sprintf("enqueue rate at %d, sendworker ÷ asynq", c.n),
		fmt.Sprintf("%.0f%%", 100*enq.perSecond()/enqBase.perSecond()), ""})
	rows = append(rows, row{"Redis time per enqueue script (EVALSHA usec_per_call)",
		fmt.Sprintf("%.1f µs", scriptUs), fmt.Sprintf("%.1f µs", scriptUsBase)})

	approve := func(i int) error {
		// The sends of the enqueue phase: the seeded ones stay pending for the list queries.
		req := sendRequest("more", i, c.accounts)
		_, err := svc.Approve(ctx, req.SendID, req.Digest(), "bench-approver")
		return err
	}
	appr, err := measure(c.ops, c.conc, approve)
	if err != nil {
		return fmt.Errorf("approve: %w", err)
	}
	apprBase, err := measure(c.ops, c.conc, enqueueTask)
	if err != nil {
		return err
	}
	rows = append(rows, row{fmt.Sprintf("approve (Service.Approve) at %d", c.n), appr.rate(), apprBase.rate()})

	// List latency: one caller, page of 50, first page and a page half-way down.
	pending := tasks.StatePendingApproval
	account := accountOf(0, c.accounts)
	stateCursor, err := cursorAt(ctx, rdb, l.Keys().State(pending), c.n/2)
	if err != nil {
		return err
	}
	acctCursor, err := cursorAt(ctx, rdb, l.Keys().Account(account, pending), c.n/c.accounts/2)
	if err != nil {
		return err
	}
	list := func(q ledger.Query) func(int) error {
		return func(int) error {
			q.Limit = 50
			p, err := l.List(ctx, q)
			if err == nil && len(p.Records) != 50 {
				err = fmt.Errorf("page of %d records, want 50", len(p.Records))
			}
			return err
		}
	}
	baseQueueLen := c.n + 2*c.ops
	listBase := func(page int) func(int) error {
		return func(int) error {
			ts, err := insp.ListPendingTasks(baselineQueue, asynq.PageSize(50), asynq.Page(page))
			if err == nil && len(ts) != 50 {
				err = fmt.Errorf("asynq page of %d tasks, want 50", len(ts))
			}
			return err
		}
	}
	deepBase := baseQueueLen / 50 / 2
	for _, q := range []struct {
		name string
		fn   func(int) error
		base func(int) error
	}{
		{"list by state, first page", list(ledger.Query{State: pending}), listBase(1)},
		{fmt.Sprintf("list by state, page at %d", c.n/2), list(ledger.Query{State: pending, Cursor: stateCursor}), listBase(deepBase)},
		{"list by account+state, first page", list(ledger.Query{State: pending, AccountID: account}), listBase(1)},
		{fmt.Sprintf("list by account+state, page at %d", c.n/c.accounts/2), list(ledger.Query{State: pending, AccountID: account, Cursor: acctCursor}), listBase(deepBase)},
	} {
		m, err := measure(c.reps, 1, q.fn)
		if err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
		b, err := measure(c.reps, 1, q.base)
		if err != nil {
			return fmt.Errorf("%s baseline: %w", q.name, err)
		}
		rows = append(rows, row{q.name + " (50)", m.latency(), b.latency()})
	}

	mem := rdb.InfoMap(ctx, "memory").Item("Memory", "used_memory_human")
	printTable(rows)
	fmt.Printf("\nbaseline: asynq.Client.Enqueue of a %d-byte task (the send's request as JSON, %d-character text); list baseline: Inspector.ListPendingTasks, page of 50, first page and page %d of a %d-task queue.\nredis used_memory after the run: %s\n",
		len(payload), len(sendRequest("bench", 0, c.accounts).Text), deepBase, baseQueueLen, mem)
	fmt.Printf("\none pending send's keys (MEMORY USAGE, encoding):\n%s", breakdown)
	return nil
}

// scriptMicros is Redis's mean time per script call (FCALL or EVALSHA: sendworker's
// scripts run as Functions on Redis 7, asynq's by EVALSHA) since the last CONFIG RESETSTAT,
// in µs.
func scriptMicros(ctx context.Context, rdb *redis.Client) (float64, error) {
	stats := rdb.InfoMap(ctx, "commandstats")
	var calls, usec float64
	for _, name := range []string{"cmdstat_evalsha", "cmdstat_fcall"} {
		for kv := range strings.SplitSeq(stats.Item("Commandstats", name), ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "calls":
				calls += n
			case "usec":
				usec += n
			}
		}
	}
	if calls == 0 {
		return 0, errors.New("commandstats: no evalsha or fcall calls")
	}
	return usec / calls, nil
}

// usedMemory is Redis's used_memory in bytes.
func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	v := rdb.InfoMap(ctx, "memory").Item("Memory", "used_memory")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("used_memory %q: %w", v, err)
	}
	return n, nil
}

// sendBreakdown says where a pending send's bytes go: its record and history
// keys and its contact index key as MEMORY USAGE counts them, its share of the
// index zsets and of the audit stream (their MEMORY USAGE ÷ n, right after
// seeding n sends over accounts), and the rest of the measured bytes per send
// (the keyspace's own tables: a dict and an expires entry per key).
func sendBreakdown(ctx context.Context, rdb *redis.Client, keys ledger.Keys, req tasks.SendRequest, n, accounts int, perSend float64) (string, error) {
	var b strings.Builder
	var own float64
	usage := func(key string) (int64, error) {
		u, err := rdb.MemoryUsage(ctx, key, 0).Result()
		if err == redis.Nil {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("memory usage %s: %w", key, err)
		}
		return u, nil
	}
	for _, k := range []struct{ name, key string }{
		{"record hash", keys.Send(req.SendID)}, {"history list", keys.History(req.SendID)},
		{"contact index", keys.Contact(req.ChatID)},
	} {
		u, err := usage(k.key)
		if err != nil {
			return "", err
		}
		if u == 0 {
			fmt.Fprintf(&b, "  %-16s absent\n", k.name)
			continue
		}
		enc, err := rdb.ObjectEncoding(ctx, k.key).Result()
		if err != nil {
			return "", fmt.Errorf("object encoding %s: %w", k.key, err)
		}
		own += float64(u)
		fmt.Fprintf(&b, "  %-16s %5d B  %s\n", k.name, u, enc)
	}
	pending := tasks.StatePendingApproval
	shared := []struct {
		name string
		keys []string
	}{
		{"index entries", []string{keys.State(pending), keys.Deadlines()}},
		{"audit entry", []string{keys.Audit()}},
	}
	for a := range accounts {
		acct := accountOf(a, accounts)
		shared[0].keys = append(shared[0].keys, keys.Account(acct, pending))
	}
	for _, sh := range shared {
		var total int64
		for _, key := range sh.keys {
			u, err := usage(key)
			if err != nil {
				return "", err
			}
			total += u
		}
		share := float64(total) / float64(n)
		own += share
		fmt.Fprintf(&b, "  %-16s %5.0f B  (share of %d keys ÷ %d sends)\n", sh.name, share, len(sh.keys), n)
	}
	fmt.Fprintf(&b, "  %-16s %5.0f B  (the keyspace's tables: dict and expires entries of the keys above)\n", "the rest", perSend-own)
	return b.String(), nil
}

// sendRequest is the i-th send of a run: a chats_messages_send of one of
// the accounts, with text and metadata of a realistic size.
func sendRequest(prefix string, i, accounts int) tasks.SendRequest {
	return tasks.SendRequest{
		SendID:    fmt.Sprintf("%s-%07d", prefix, i),
		Operation: tasks.OpSendMessage,
		AccountID: accountOf(i, accounts),
		ChatID:    fmt.Sprintf("chat-%07d", i),
		Text:      benchText(i),
		Metadata:  []byte(`{"sequence":"seq-42","step":3,"contact_id":"c-` + strconv.Itoa(i) + `"}`),
	}
}

// benchText is a 200-character message, the size the memory target is stated for.
func benchText(i int) string {
	t := "Hello " + strconv.Itoa(i) + ", following up on our conversation about the offer we discussed last week: " +
		"are you still interested? I can send the updated pricing and book a short call on Thursday if that suits you."
	return (t + strings.Repeat(".", 200))[:200]
}

func accountOf(i, accounts int) string { return fmt.Sprintf("acc-%03d", i%accounts) }

// cursorAt returns the List cursor after the rank-th newest member of index
// (the cursor encodes the member's seq, which is its score). Walking there
// page by page would measure the walk, not the deep page.
func cursorAt(ctx context.Context, rdb *redis.Client, index string, rank int) (string, error) {
	zs, err := rdb.ZRevRangeWithScores(ctx, index, int64(rank), int64(rank)).Result()
	if err != nil || len(zs) != 1 {
		return "", fmt.Errorf("cursor at %d of %s: %v (%d entries)", rank, index, err, len(zs))
	}
	return base64.RawURLEncoding.EncodeToString([]byte("s1." + strconv.FormatInt(int64(zs[0].Score), 10))), nil
}

// result of a measured phase.
type result struct {
	n    int
	took time.Duration
	lat  []time.Duration // sorted
}

func (r result) rate() string {
	return fmt.Sprintf("%s/s (p50 %s, p99 %s)", group(int(float64(r.n)/r.took.Seconds())), ms(r.pct(50)), ms(r.pct(99)))
}

func (r result) perSecond() float64 { return float64(r.n) / r.took.Seconds() }

func (r result) latency() string {
	return fmt.Sprintf("p50 %s, p99 %s", ms(r.pct(50)), ms(r.pct(99)))
}

func (r result) pct(p int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, len(r.lat)*p/100)]
}

// measure runs fn(0..n-1) on conc goroutines and times each call.
func measure(n, conc int, fn func(int) error) (result, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				t := time.Now()
				if err := fn(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[i] = time.Since(t)
				if i > 0 && i%100_000 == 0 {
					fmt.Fprintf(os.Stderr, "  %d/%d\n", i, n)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err, _ := firstErr.Load().(error); err != nil {
		return result{}, err
	}
	slices.Sort(lat)
	return result{n: n, took: took, lat: lat}, nil
}

type row struct{ name, ours, base string }

func printTable(rows []row) {
	w0, w1 := len("operation"), len("sendworker")
	for _, r := range rows {
		w0, w1 = max(w0, len(r.name)), max(w1, len(r.ours))
	}
	fmt.Printf("| %-*s | %-*s | %s |\n", w0, "operation", w1, "sendworker", "bare asynq baseline")
	fmt.Printf("|%s|%s|%s|\n", strings.Repeat("-", w0+2), strings.Repeat("-", w1+2), strings.Repeat("-", 21))
	for _, r := range rows {
		fmt.Printf("| %-*s | %-*s | %s |\n", w0, r.name, w1, r.ours, r.base)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func group(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
