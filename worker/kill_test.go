package worker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

// Environment of the worker subprocesses of TestKillNine and TestLimitsAcrossProcesses.
const (
	procEnv      = "SENDWORKER_TEST_WORKER_PROCESS"
	procRedisEnv = "SENDWORKER_TEST_REDIS_ADDR"
	procWasimEnv = "SENDWORKER_TEST_WASIM_URL"
	// procRateEnv set: the process paces sends with the Redis rate limiter (procLimits) and
	// logs its decisions (JSON on stdout).
	procRateEnv = "SENDWORKER_TEST_RATE_LIMIT"
)

// The subprocess worker's timing: sends take 0.5–1 s at the simulator, so the provider
// timeout is 2 s and the attempt lease 3 s.
const (
	procProviderTimeout = 2 * time.Second
	procLease           = 3 * time.Second
)

// TestWorkerProcess is not a test: it is the worker process TestKillNine and
// TestLimitsAcrossProcesses start (and kill) by re-executing the test binary. It runs a real
// Worker against the given Redis and simulator until it is killed (or for five minutes at
// most, should its parent vanish).
func TestWorkerProcess(t *testing.T) {
	if os.Getenv(procEnv) == "" {
		t.Skip("helper process of TestKillNine and TestLimitsAcrossProcesses")
	}
	addr, url := os.Getenv(procRedisEnv), os.Getenv(procWasimEnv)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	opts := Options{
		Concurrency:              8,
		Lease:                    procLease,
		ProviderTimeout:          procProviderTimeout,
		ReconcileDelay:           time.Second,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		BackoffBase:              100 * time.Millisecond,
		BackoffMax:               time.Second,
	}
	if os.Getenv(procRateEnv) != "" {
		log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(os.Stdout), zapcore.InfoLevel))
		opts.Limiter = procLimiter(rdb, log)
		opts.AccountHealthTTL = 30 * time.Second
		opts.Logger = log
	}
	po := provider.Options{BaseURL: url, NoAuth: true, Timeout: procProviderTimeout}
	if opts.Limiter != nil {
		// As the daemon wires it: every provider read waits for the global request rate.
		po.Pacer = opts.Limiter.WaitGlobal
	}
	client, err := provider.New(po)
	if err != nil {
		t.Fatal(err)
	}
	w := New(asynq.RedisClientOpt{Addr: addr}, ledger.New(rdb, ledger.Options{}), client, opts)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Println("worker ready")
	time.Sleep(5 * time.Minute)
}

// TestKillNine: worker processes are killed with SIGKILL while sends are in flight at the
// provider; a new process picks up. Every send ends sent, each delivered exactly once.
//
// Timing. Sends at the simulator take 0.5–1 s, so when the ledger shows sends in `sending`,
// their HTTP calls are in flight and the kill lands mid-send. A killed process's asynq tasks
// stay "active" under asynq's own 30 s lease until asynq's recoverer (run at server start and
// then every minute) finds the lease expired for more than 30 s: about 60–65 s after the kill
// here, since the second process starts right away and its first periodic check is one minute
// later. The recovered task is retried after 1 s (RetryDelayFunc, not counted as a failure),
// meets the send's ledger lease (3 s, long expired) and reconciles: the message is in the chat
// (the provider acted before the process died) → sent with its id; it is not → sent again.
// Sends still queued are served by the second process at once. Total: about 70 s.
//
// Faster recovery needs the ledger to re-release sends stuck in `sending` past their lease
// with a new generation (the old task is then dropped as stale when asynq recovers it); the
// worker needs no change for that.
func TestKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("about 70 s: waits for asynq's lease recovery")
	}
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.noStart = true })
	e.sim.Sim().SetFaults(wasim.Faults{LatencyMin: 500 * time.Millisecond, LatencyMax: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.approval.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	var ids []string
	for i := range 40 {
		id := newID("kill")
		e.submit(message(id, accA, "chat-x"+twoDigits(i%20)))
		ids = append(ids, id)
	}

	first := startWorkerProcess(t, e)
	// Kill while sends are in flight: the ledger has attempts in `sending` and at least one
	// message was already delivered.
	deadline := time.Now().Add(30 * time.Second)
	for {
		counts, err := e.ledger.Counts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if counts[tasks.StateSending] >= 3 && len(e.sim.Sim().Deliveries()) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sends in flight: %v", counts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	inFlight := 0
	for _, id := range ids {
		if e.get(id).State == tasks.StateSending {
			inFlight++
		}
	}
	first.kill()
	killedAt := time.Now()
	t.Logf("killed the worker with %d sends in flight, %d delivered", inFlight, applied(e.sim.Sim().Deliveries()))

	second := startWorkerProcess(t, e)
	defer second.kill()
	for _, id := range ids {
		rec := e.waitTerminal(id, 150*time.Second)
		if rec.State != tasks.StateSent {
			t.Errorf("%s: %s %s; %s", id, rec.State, rec.Reason, historyString(rec))
		}
		if n := applied(e.deliveries(id)); n != 1 {
			t.Errorf("%s: delivered %d times: %+v", id, n, e.deliveries(id))
		}
		e.expectResult(rec)
	}
	reconciled := 0
	for _, id := range ids {
		for _, ev := range e.get(id).History {
			if ev.State == tasks.StateSending && strings.Contains(ev.Detail, "reconcil") {
				reconciled++
			}
		}
	}
	t.Logf("all %d sends sent once, %s after the kill; %d attempts reconciled", len(ids), time.Since(killedAt).Round(time.Second), reconciled)
	if reconciled == 0 {
		t.Error("no attempt was reconciled: the kill did not land mid-send")
	}
	if t.Failed() {
		t.Logf("first process output:\n%s\nsecond process output:\n%s", first.output(), second.output())
	}
}

type workerProcess struct {
	cmd *exec.Cmd
	out *syncBuffer
}

// startWorkerProcess re-executes the test binary as a worker process and waits until it is
// ready. env adds "KEY=value" variables.
func startWorkerProcess(t *testing.T, e *env, env ...string) *workerProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerProcess$", "-test.v", "-test.timeout=6m")
	cmd.Env = append(os.Environ(), procEnv+"=1", procRedisEnv+"="+e.redis.Addr(), procWasimEnv+"="+e.sim.URL())
	cmd.Env = append(cmd.Env, env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &workerProcess{cmd: cmd, out: out}
	t.Cleanup(p.kill)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "worker ready") {
		if time.Now().After(deadline) {
			t.Fatalf("worker process not ready:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

// kill sends SIGKILL: no shutdown, no requeue, no last write.
func (p *workerProcess) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func (p *workerProcess) output() string { return p.out.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
