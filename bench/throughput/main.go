// Command throughput measures what sendworker costs on top of bare asynq, in
// one run on one throwaway redis-server:
//
//   - bare asynq: n no-op tasks pre-enqueued, then an asynq server with a
//     no-op handler drains them (tasks/s);
//   - sendworker: n sends enqueued and approved through the Approval API
//     (approval pre-granted), then the whole daemon (app.New, limits off)
//     releases and delivers them to the provider simulator (in the parent,
//     zero latency) until every send is terminal (sends/s).
//
// For each concurrency it reports the ratio of the two rates, Redis commands
// per task/send (INFO commandstats deltas, by command), the handler overhead
// per send beyond the provider calls (p50/p99), and the resident memory of
// the process that ran the pipeline. Each pipeline runs in a fresh child
// process (this binary re-executed) so that its memory is its own.
//
//	go run ./bench/throughput                          # n=10000, concurrency 50 and 200
//	go run ./bench/throughput -n 20000 -concurrency 100 -json
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/internal/callgrind"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

func numGoroutine() int { return runtime.NumGoroutine() }

func main() {
	if kind := os.Getenv(childEnv); kind != "" {
		if err := runChild(kind); err != nil {
			fmt.Fprintln(os.Stderr, "throughput child:", err)
			os.Exit(1)
		}
		return
	}
	var (
		n        int
		concList string
		accounts int
		chats    int
		aof      bool
		asJSON   bool
		idle     int
		logLevel string
		cpuProf  string
		instr    bool
	)
	flag.IntVar(&n, "n", 10_000, "tasks (baseline) and sends (sendworker) per run")
	flag.StringVar(&concList, "concurrency", "50,200", "worker concurrencies to measure, comma-separated")
	flag.IntVar(&accounts, "accounts", 100, "simulator accounts the sends are spread over")
	flag.IntVar(&chats, "chats", 20, "chats per account")
	flag.BoolVar(&aof, "aof", false, "run Redis with AOF (appendfsync everysec)")
	flag.BoolVar(&asJSON, "json", false, "print the report as JSON")
	flag.IntVar(&idle, "idle-conns", 0, "experiment: raise the provider transport's MaxIdleConnsPerHost to this in the worker; 0 = as the daemon runs (1.5 x concurrency)")
	flag.StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile of each sendworker child to this path + .c<concurrency>")
	flag.StringVar(&logLevel, "log-level", "info", "experiment: SENDWORKER_LOG_LEVEL of the worker (info = as deployed)")
	flag.BoolVar(&instr, "redis-instructions", false, "run Redis under valgrind's callgrind and report the instructions it executes per task / send "+
		"(repeatable where CPU times are not; every time and rate of such a run is slowed by valgrind and means nothing)")
	flag.Parse()
	var concs []int
	for f := range strings.SplitSeq(concList, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 || c > 1000 {
			fmt.Fprintf(os.Stderr, "throughput: bad -concurrency %q\n", f)
			os.Exit(2)
		}
		concs = append(concs, c)
	}
	if n < 1 {
		fmt.Fprintln(os.Stderr, "throughput: -n must be at least 1")
		os.Exit(2)
	}
	os.Setenv(childIdleEnv, strconv.Itoa(idle))
	os.Setenv(childLogEnv, logLevel)
	os.Setenv(childProfEnv, cpuProf)
	os.Setenv(childAccountsEnv, strconv.Itoa(accounts))
	os.Setenv(childChatsEnv, strconv.Itoa(chats))
	rep, err := run(n, concs, accounts, chats, aof, instr)
	if err == nil {
		rep.IdleConns, rep.LogLevel = idle, logLevel
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "throughput:", err)
		os.Exit(1)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	rep.print(os.Stdout)
}

// report is the whole run.
type report struct {
	N            int       `json:"n"`
	GOMAXPROCS   int       `json:"gomaxprocs"`
	CPUs         int       `json:"cpus"`
	RedisVersion string    `json:"redis_version"`
	AOF          bool      `json:"aof"`
	RedisRTTus   float64   `json:"redis_ping_p50_us"`
	Levels       []level   `json:"levels"`
	Enqueue      enqueueed `json:"enqueue"`
	IdleConns    int       `json:"idle_conns_experiment,omitempty"`
	// Callgrind: Redis ran under callgrind (-redis-instructions); the times and rates are valgrind's.
	Callgrind bool   `json:"redis_under_callgrind,omitempty"`
	LogLevel  string `json:"worker_log_level"`
}

// enqueueed compares the producer side (measured once, at the first level).
type enqueueed struct {
	AsynqPerSec    float64 `json:"asynq_enqueue_per_sec"`
	SendworkerPerS float64 `json:"sendworker_enqueue_approve_per_sec"`
	AsynqCmds      float64 `json:"asynq_commands_per_task"`
	SendworkerCmds float64 `json:"sendworker_commands_per_send"`
	// Redis instructions per task / send of the enqueue (and approval), with -redis-instructions.
	AsynqInstr      float64 `json:"asynq_redis_instructions_per_task,omitempty"`
	SendworkerInstr float64 `json:"sendworker_redis_instructions_per_send,omitempty"`
}

// level is one concurrency.
type level struct {
	Concurrency int          `json:"concurrency"`
	Asynq       *childReport `json:"asynq"`
	Sendworker  *childReport `json:"sendworker"`
	Ratio       float64      `json:"ratio"`
	// Redis commands per task / per send while the pipeline ran, by command.
	AsynqCmds      map[string]float64 `json:"asynq_commands_per_task"`
	SendworkerCmds map[string]float64 `json:"sendworker_commands_per_send"`
	AsynqTotal     float64            `json:"asynq_commands_per_task_total"`
	SendworkerTot  float64            `json:"sendworker_commands_per_send_total"`
	// Redis time per send by command (commandstats usec; a script's includes its commands).
	SendworkerUsec map[string]float64 `json:"sendworker_redis_usec_per_send"`
	// Lua script calls per task/send.
	AsynqScripts      float64 `json:"asynq_scripts_per_task"`
	SendworkerScripts float64 `json:"sendworker_scripts_per_send"`
	// Redis server CPU (user+sys) per task/send, in microseconds.
	AsynqRedisCPUus      float64 `json:"asynq_redis_cpu_us_per_task"`
	SendworkerRedisCPUus float64 `json:"sendworker_redis_cpu_us_per_send"`
	// Redis user-space instructions per task / send (callgrind), with -redis-instructions.
	AsynqInstr       float64 `json:"asynq_redis_instructions_per_task,omitempty"`
	SendworkerInstr  float64 `json:"sendworker_redis_instructions_per_send,omitempty"`
	ProviderReqsPer  float64 `json:"provider_requests_per_send"`
	ProviderConnsPer float64 `json:"provider_connections_per_send"`
	Overhead         pcts    `json:"overhead_us"`
	Provider         pcts    `json:"provider_us"`
	Span             pcts    `json:"span_us"`
	// SlotUS is concurrency × elapsed / n: the mean time a send holds a
	// worker slot, if the workers were saturated (Little's law).
	SlotUS      float64 `json:"slot_mean_us"`
	AsynqSlotUS float64 `json:"asynq_slot_mean_us"`
	// CPU per task/send, in microseconds: the worker process (whole life,
	// start-up included), Redis, and (sendworker) the simulator in the parent.
	AsynqCPUus      float64 `json:"asynq_worker_cpu_us_per_task"`
	SendworkerCPUus float64 `json:"sendworker_worker_cpu_us_per_send"`
	SimCPUus        float64 `json:"simulator_cpu_us_per_send"`
	// The floor: asynq with a handler that makes only the two provider calls of a send.
	Floor         *childReport `json:"floor"`
	FloorRatio    float64      `json:"floor_ratio"`
	FloorCPUus    float64      `json:"floor_worker_cpu_us_per_task"`
	FloorSimCPUus float64      `json:"floor_simulator_cpu_us_per_task"`
}

type pcts struct {
	P50, P99, Mean float64
	N              int
}

func percentiles(us []int64) pcts {
	if len(us) == 0 {
		return pcts{}
	}
	var sum int64
	for _, v := range us {
		sum += v
	}
	at := func(p float64) float64 { return float64(us[min(len(us)-1, int(float64(len(us))*p))]) }
	return pcts{P50: at(0.50), P99: at(0.99), Mean: float64(sum) / float64(len(us)), N: len(us)}
}

func run(n int, concs []int, accounts, chats int, aof, instr bool) (*report, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-throughput-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	opts := redisproc.Options{Dir: dir, AppendOnly: aof}
	if instr {
		if err := callgrind.Available(); err != nil {
			return nil, err
		}
		opts.Wrapper = callgrind.Wrapper(dir)
	}
	proc, err := redisproc.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = proc.Kill() }()
	counter := instructions{on: instr, c: callgrind.Counter{PID: proc.PID(), Dir: dir}, n: n}
	rdb := redis.NewClient(&redis.Options{Addr: proc.Addr(), PoolSize: 64})
	defer rdb.Close()

	rep := &report{N: n, GOMAXPROCS: runtime.GOMAXPROCS(0), CPUs: runtime.NumCPU(), AOF: aof, Callgrind: instr}
	rep.RedisVersion = rdb.InfoMap(ctx, "server").Item("Server", "redis_version")
	rep.RedisRTTus = pingRTT(ctx, rdb)
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}

	for li, conc := range concs {
		lv := level{Concurrency: conc}
		fmt.Fprintf(os.Stderr, "concurrency %d: bare asynq, %d tasks...\n", conc, n)

		// (a) bare asynq.
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			return nil, err
		}
		before, err := commandStats(ctx, rdb)
		if err != nil {
			return nil, err
		}
		if err := counter.start(ctx); err != nil {
			return nil, err
		}
		enqRate, err := enqueueNoop(ctx, proc.Addr(), n)
		if err != nil {
			return nil, err
		}
		enqInstr, err := counter.perUnit(ctx, "asynq-enqueue")
		if err != nil {
			return nil, err
		}
		mid, err := commandStats(ctx, rdb)
		if err != nil {
			return nil, err
		}
		if li == 0 {
			rep.Enqueue.AsynqInstr = enqInstr
			rep.Enqueue.AsynqPerSec = enqRate
			rep.Enqueue.AsynqCmds = total(diff(mid, before)) / float64(n)
		}
		cpu0 := redisCPU(ctx, rdb)
		if err := counter.start(ctx); err != nil {
			return nil, err
		}
		lv.Asynq, err = spawn(self, "asynq", proc.Addr(), "", n, conc)
		if err != nil {
			return nil, err
		}
		if lv.AsynqInstr, err = counter.perUnit(ctx, fmt.Sprintf("asynq-c%d", conc)); err != nil {
			return nil, err
		}
		lv.AsynqRedisCPUus = (redisCPU(ctx, rdb) - cpu0) * 1e6 / float64(n)
		after, err := commandStats(ctx, rdb)
		if err != nil {
			return nil, err
		}
		d := subtract(diff(after, mid), lv.Asynq.PollCommands)
		lv.AsynqCmds, lv.AsynqTotal = perUnit(d, n), total(d)/float64(n)
		lv.AsynqScripts = scripts(d) / float64(n)
		lv.AsynqSlotUS = float64(conc) * lv.Asynq.Seconds * 1e6 / float64(n)
		lv.AsynqCPUus = lv.Asynq.CPUSeconds * 1e6 / float64(n)

		// (c) the floor: asynq plus the two provider calls of a send, nothing of sendworker.
		fmt.Fprintf(os.Stderr, "concurrency %d: asynq + provider calls only, %d tasks...\n", conc, n)
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			return nil, err
		}
		if _, err := enqueueNoop(ctx, proc.Addr(), n); err != nil {
			return nil, err
		}
		floorSim, _, closeFloorSim, err := startSim(accounts, chats)
		if err != nil {
			return nil, err
		}
		parentF := selfCPU()
		lv.Floor, err = spawn(self, "floor", proc.Addr(), floorSim, n, conc)
		lv.FloorSimCPUus = (selfCPU() - parentF) * 1e6 / float64(n)
		closeFloorSim()
		if err != nil {
			return nil, err
		}
		lv.FloorRatio = lv.Floor.PerSecond / lv.Asynq.PerSecond
		lv.FloorCPUus = lv.Floor.CPUSeconds * 1e6 / float64(n)

		// (b) sendworker.
		fmt.Fprintf(os.Stderr, "concurrency %d: sendworker, %d sends...\n", conc, n)
		if err := rdb.FlushAll(ctx).Err(); err != nil {
			return nil, err
		}
		sim, conns, closeSim, err := startSim(accounts, chats)
		if err != nil {
			return nil, err
		}
		before, err = commandStats(ctx, rdb)
		if err != nil {
			closeSim()
			return nil, err
		}
		if err := counter.start(ctx); err != nil {
			closeSim()
			return nil, err
		}
		approveRate, err := enqueueApprove(ctx, rdb, n, accounts, chats)
		if err != nil {
			closeSim()
			return nil, err
		}
		approveInstr, err := counter.perUnit(ctx, "sendworker-enqueue-approve")
		if err != nil {
			closeSim()
			return nil, err
		}
		mid, err = commandStats(ctx, rdb)
		if err != nil {
			closeSim()
			return nil, err
		}
		if li == 0 {
			rep.Enqueue.SendworkerInstr = approveInstr
			rep.Enqueue.SendworkerPerS = approveRate
			rep.Enqueue.SendworkerCmds = total(diff(mid, before)) / float64(n)
		}
		usec0, err := commandUsec(ctx, rdb)
		if err != nil {
			closeSim()
			return nil, err
		}
		cpu0 = redisCPU(ctx, rdb)
		parent0 := selfCPU()
		if err := counter.start(ctx); err != nil {
			closeSim()
			return nil, err
		}
		lv.Sendworker, err = spawn(self, "sendworker", proc.Addr(), sim, n, conc)
		if err == nil {
			lv.SendworkerInstr, err = counter.perUnit(ctx, fmt.Sprintf("sendworker-c%d", conc))
		}
		lv.SimCPUus = (selfCPU() - parent0) * 1e6 / float64(n)
		lv.SendworkerRedisCPUus = (redisCPU(ctx, rdb) - cpu0) * 1e6 / float64(n)
		closeSim()
		if err != nil {
			return nil, err
		}
		after, err = commandStats(ctx, rdb)
		if err != nil {
			return nil, err
		}
		d = subtract(diff(after, mid), lv.Sendworker.PollCommands)
		lv.SendworkerCmds, lv.SendworkerTot = perUnit(d, n), total(d)/float64(n)
		usec1, err := commandUsec(ctx, rdb)
		if err != nil {
			return nil, err
		}
		lv.SendworkerUsec = perUnit(diff(usec1, usec0), n)
		lv.SendworkerScripts = scripts(d) / float64(n)
		lv.Ratio = lv.Sendworker.PerSecond / lv.Asynq.PerSecond
		lv.ProviderReqsPer = float64(lv.Sendworker.ProviderReqs) / float64(n)
		lv.ProviderConnsPer = float64(conns.Load()) / float64(n)
		lv.Overhead = percentiles(lv.Sendworker.OverheadUS)
		lv.Provider = percentiles(lv.Sendworker.ProviderUS)
		lv.Span = percentiles(lv.Sendworker.SpanUS)
		// The raw samples stay out of the report.
		lv.Sendworker.ProviderUS, lv.Sendworker.SpanUS, lv.Sendworker.OverheadUS = nil, nil, nil
		lv.SlotUS = float64(conc) * lv.Sendworker.Seconds * 1e6 / float64(n)
		if lv.Sendworker != nil {
			lv.SendworkerCPUus = lv.Sendworker.CPUSeconds * 1e6 / float64(n)
		}
		rep.Levels = append(rep.Levels, lv)
	}
	return rep, nil
}

// startSim runs the provider simulator in this process with zero latency
// and no faults, on a listener that counts the connections the worker opens.
func startSim(accounts, chats int) (string, *atomic.Int64, func(), error) {
	sim, err := wasim.New(wasim.Options{APIKey: "bench-key", Seed: wasim.GenerateSeed(accounts, chats, 1)})
	if err != nil {
		return "", nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	conns := &atomic.Int64{}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(&countingListener{Listener: ln, n: conns}) }()
	return "http://" + ln.Addr().String(), conns, func() { _ = srv.Close() }, nil
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// spawn runs one pipeline in a child process and returns its report.
func spawn(self, kind, redisAddr, wasimURL string, n, conc int) (*childReport, error) {
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"="+kind, childRedisEnv+"="+redisAddr, childWasimEnv+"="+wasimURL,
		childNEnv+"="+strconv.Itoa(n), childConcEnv+"="+strconv.Itoa(conc))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s child: %v\n%s", kind, err, lastLines(errOut.String(), 20))
	}
	var rep childReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("%s child: %v: %q", kind, err, out.String())
	}
	return &rep, nil
}

func lastLines(s string, k int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], "\n")
}

// enqueueNoop fills the baseline queue with n small tasks from 32 callers.
func enqueueNoop(ctx context.Context, addr string, n int) (float64, error) {
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr, PoolSize: 64})
	defer client.Close()
	payload := []byte(`{"send_id":"bench-0000000","digest":"` + strings.Repeat("0", 64) + `","gen":1}`)
	return parallel(n, 32, func(int) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask(baselineTaskTy, payload), asynq.Queue(baselineQueue))
		return err
	})
}

// enqueueApprove enqueues n sends as the scheduler and approves each as
// the approver, from 32 callers: they end in the outbox, not yet released.
func enqueueApprove(ctx context.Context, rdb *redis.Client, n, accounts, chats int) (float64, error) {
	svc := approval.New(ledger.New(rdb, ledger.Options{}), nil, approval.Options{})
	return parallel(n, 32, func(i int) error {
		acc, chat := benchChat(i, accounts, chats)
		req := tasks.SendRequest{
			SendID:    fmt.Sprintf("bench-%07d", i),
			Operation: tasks.OpSendMessage,
			AccountID: acc,
			ChatID:    chat,
			Text:      benchText(i),
			Metadata:  []byte(`{"sequence":"seq-42","step":3,"contact_id":"c-` + strconv.Itoa(i) + `"}`),
		}
		rec, _, err := svc.Enqueue(ctx, req, "bench-sequencer")
		if err != nil {
			return err
		}
		_, err = svc.Approve(ctx, req.SendID, rec.Digest, "bench-approver")
		return err
	})
}

// benchChat is the account and chat of the i-th send: spread over every account, then every
// chat of the simulator's generated seed.
func benchChat(i, accounts, chats int) (account, chat string) {
	acc := i%accounts + 1
	c := (i/accounts)%chats + 1
	return fmt.Sprintf("acc-%04d", acc), fmt.Sprintf("chat-%04d-%05d", acc, c)
}

// benchText is the text of the i-th send.
func benchText(i int) string {
	return "Hello " + strconv.Itoa(i) + ", following up on our conversation about the offer: are you still interested?"
}

// parallel runs fn(0..n-1) on conc goroutines and returns calls per second.
func parallel(n, conc int, fn func(int) error) (float64, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), firstErr
}

func pingRTT(ctx context.Context, rdb *redis.Client) float64 {
	var lat []time.Duration
	for range 1000 {
		t := time.Now()
		if rdb.Ping(ctx).Err() != nil {
			return -1
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	return float64(lat[len(lat)/2].Nanoseconds()) / 1e3
}

// commandStats reads INFO commandstats as calls by command.
func commandStats(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	return commandStat(ctx, rdb, "calls=")
}

// commandUsec is INFO commandstats' usec by command: the time Redis spent in each command
// (a script's includes the commands it ran).
func commandUsec(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	return commandStat(ctx, rdb, "usec=")
}

func commandStat(ctx context.Context, rdb *redis.Client, field string) (map[string]int64, error) {
	txt, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(txt, "\n") {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, stats, _ := strings.Cut(rest, ":")
		for kv := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(kv, field); ok {
				out[name], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	// The INFO calls of the measurement itself.
	out["info"]--
	return out, nil
}

func diff(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	delete(out, "info")
	delete(out, "flushall")
	return out
}

func subtract(d map[string]int64, own map[string]int64) map[string]int64 {
	for k, v := range own {
		d[k] -= v
		if d[k] <= 0 {
			delete(d, k)
		}
	}
	return d
}

func total(d map[string]int64) float64 {
	var t int64
	for _, v := range d {
		t += v
	}
	return float64(t)
}

func perUnit(d map[string]int64, n int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range d {
		out[k] = float64(v) / float64(n)
	}
	return out
}

// scriptCommands are the commands a client sends that run Lua.
var scriptCommands = map[string]bool{"evalsha": true, "eval": true, "evalsha_ro": true, "eval_ro": true, "fcall": true, "fcall_ro": true}

// scripts counts the script calls (INFO commandstats also counts each
// command a script runs, under its own name).
func scripts(d map[string]int64) float64 {
	var t int64
	for k, v := range d {
		if scriptCommands[k] {
			t += v
		}
	}
	return float64(t)
}

// redisCPU is the Redis server's CPU time so far (user + sys), in seconds.
func redisCPU(ctx context.Context, rdb *redis.Client) float64 {
	m := rdb.InfoMap(ctx, "cpu")
	var t float64
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, _ := strconv.ParseFloat(m.Item("CPU", k), 64)
		t += v
	}
	return t
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "sendworker throughput: n=%d, %d CPUs (GOMAXPROCS %d), redis %s (AOF %v, PING p50 %.0fµs); provider: wasim in process, zero latency, no faults\n",
		r.N, r.CPUs, r.GOMAXPROCS, r.RedisVersion, r.AOF, r.RedisRTTus)
	fmt.Fprintf(w, "worker log level %s", r.LogLevel)
	if r.IdleConns > 0 {
		fmt.Fprintf(w, "; EXPERIMENT: provider transport MaxIdleConnsPerHost=%d (the daemon as shipped uses Go's default, 2)", r.IdleConns)
	}
	fmt.Fprint(w, "\n\n")
	if r.Callgrind {
		fmt.Fprint(w, "REDIS RAN UNDER CALLGRIND (-redis-instructions): every time, rate and CPU figure below is slowed by valgrind and means nothing; the instruction counts are the measure.\n\n")
		fmt.Fprintf(w, "Redis instructions (user space, callgrind), producer side: asynq enqueue %.0fk per task; sendworker enqueue+approve %.0fk per send\n",
			r.Enqueue.AsynqInstr/1e3, r.Enqueue.SendworkerInstr/1e3)
		for _, l := range r.Levels {
			fmt.Fprintf(w, "Redis instructions (user space, callgrind), concurrency %d: bare asynq %.0fk per task; sendworker %.0fk per send (release to asynq included) = %.1f×\n",
				l.Concurrency, l.AsynqInstr/1e3, l.SendworkerInstr/1e3, l.SendworkerInstr/l.AsynqInstr)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "producer side: asynq enqueue %.0f tasks/s (%.1f Redis commands/task); sendworker enqueue+approve %.0f sends/s (%.1f commands/send)\n\n",
		r.Enqueue.AsynqPerSec, r.Enqueue.AsynqCmds, r.Enqueue.SendworkerPerS, r.Enqueue.SendworkerCmds)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "concurrency\tasynq tasks/s\tasynq + provider calls/s\tratio\tsendworker sends/s\tratio\tRedis cmds/task\tRedis cmds/send\tscripts/task\tscripts/send\tRedis CPU/task\tRedis CPU/send\toverhead p50\toverhead p99\tRSS asynq\tRSS sendworker\t")
	for _, l := range r.Levels {
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.0f%%\t%.0f\t%.0f%%\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			l.Concurrency, l.Asynq.PerSecond, l.Floor.PerSecond, 100*l.FloorRatio, l.Sendworker.PerSecond, 100*l.Ratio, l.AsynqTotal, l.SendworkerTot,
			l.AsynqScripts, l.SendworkerScripts, us(l.AsynqRedisCPUus), us(l.SendworkerRedisCPUus),
			us(l.Overhead.P50), us(l.Overhead.P99), mb(l.Asynq.VmHWMkB), mb(l.Sendworker.VmHWMkB))
	}
	_ = tw.Flush()
	for _, l := range r.Levels {
		fmt.Fprintf(w, "\nconcurrency %d\n", l.Concurrency)
		fmt.Fprintf(w, "  sendworker: %d sends in %.2fs, final states %v; peak goroutines %d (asynq %d); RSS peak/end %s/%s (asynq %s/%s)\n",
			l.Sendworker.N, l.Sendworker.Seconds, l.Sendworker.States, l.Sendworker.Goroutines, l.Asynq.Goroutines,
			mb(l.Sendworker.VmHWMkB), mb(l.Sendworker.VmRSSkB), mb(l.Asynq.VmHWMkB), mb(l.Asynq.VmRSSkB))
		fmt.Fprintf(w, "  per send (%d timed): provider p50 %s p99 %s mean %s | first provider request → \"send finished\" p50 %s p99 %s | overhead p50 %s p99 %s mean %s\n",
			l.Span.N, us(l.Provider.P50), us(l.Provider.P99), us(l.Provider.Mean), us(l.Span.P50), us(l.Span.P99),
			us(l.Overhead.P50), us(l.Overhead.P99), us(l.Overhead.Mean))
		fmt.Fprintf(w, "  CPU per task/send: worker process %s vs %s (bare asynq); Redis %s vs %s; simulator %s — elapsed × CPUs = %s per send\n",
			us(l.SendworkerCPUus), us(l.AsynqCPUus), us(l.SendworkerRedisCPUus), us(l.AsynqRedisCPUus), us(l.SimCPUus),
			us(l.Sendworker.Seconds*1e6*float64(r.CPUs)/float64(l.Sendworker.N)))
		fmt.Fprintf(w, "  floor (asynq + the 2 provider calls, nothing else): %s worker + %s simulator per task; sendworker / floor = %.0f%%\n",
			us(l.FloorCPUus), us(l.FloorSimCPUus), 100*l.Sendworker.PerSecond/l.Floor.PerSecond)
		fmt.Fprintf(w, "  worker slot per send (concurrency × elapsed / n): sendworker %s, bare asynq %s\n", us(l.SlotUS), us(l.AsynqSlotUS))
		fmt.Fprintf(w, "  provider: %.2f requests/send %v, %.2f new TCP connections/send\n", l.ProviderReqsPer, l.Sendworker.ProviderByOp, l.ProviderConnsPer)
		fmt.Fprintf(w, "  Redis commands per task (bare asynq): %s\n", topCommands(l.AsynqCmds, 12))
		fmt.Fprintf(w, "  Redis commands per send (sendworker): %s\n", topCommands(l.SendworkerCmds, 16))
		fmt.Fprintf(w, "  Redis µs per send by command (sendworker; a script's time includes its commands): %s\n", topCommands(l.SendworkerUsec, 10))
	}
	fmt.Fprint(w, `
Method. Rates: each pipeline runs in a fresh child process; the clock runs from the start of its server (asynq
server / app.Start) until the last task is acknowledged (asynq: active list empty) or the last send's result is in
the results stream. Approval is pre-granted: the sends wait in the outbox, so the sendworker rate includes the
release to asynq, the baseline rate does not include its enqueue (shown separately). The floor is bare asynq
again whose handler makes only a send's two provider calls (chats_get, chats_messages_send) with the daemon's
provider client, against the same simulator in the parent: the best any pipeline that checks the chat can do here. Redis commands: INFO
commandstats delta around the child, minus the child's own completion polls, divided by n; commands run inside Lua
scripts are counted both as EVALSHA and as themselves; background loops (heartbeats, scheduler, releaser, watchdog)
are included. Overhead: the child gives app.New (Options.ProviderTransport) a wrapper around the daemon's default
provider transport that times each provider request (until its body is closed) and attributes it to its asynq
task (task id from the request context), and captures the worker's "send finished" log line; overhead = (first
provider request → "send finished") − provider time. It leaves out the record read before the first request and
the result write + asynq ack after Finish (about 3 Redis round trips); the slot time (Little's law) includes them.
CPU: getrusage of the child (start-up included) and of the parent during the child's run (the simulator), INFO
cpu of Redis. RSS: VmHWM (peak) and VmRSS of the child, from /proc/self/status; the simulator and Redis run elsewhere.
`)
}

func topCommands(m map[string]float64, k int) string {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for c, v := range m {
		all = append(all, kv{c, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || (all[i].v == all[j].v && all[i].k < all[j].k) })
	var parts []string
	for i, e := range all {
		if i == k {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}

func us(v float64) string {
	switch {
	case v >= 10_000:
		return fmt.Sprintf("%.1fms", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2fms", v/1000)
	default:
		return fmt.Sprintf("%.0fµs", v)
	}
}

func mb(kb int64) string { return fmt.Sprintf("%.0fMB", float64(kb)/1024) }
