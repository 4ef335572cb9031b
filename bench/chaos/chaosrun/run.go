package chaosrun

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// Run performs one chaos run and audits it. The error reports a run that
// could not be carried out (build, start-up, a harness failure); a run that
// was carried out returns its Summary, whose Violations say whether the
// guarantees held.
func Run(ctx context.Context, c Config) (*Summary, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	r := &runner{c: c, runID: randomHex(4)}
	if c.Seed == 0 {
		r.rng = mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	} else {
		r.rng = mrand.New(mrand.NewPCG(c.Seed, c.Seed^0x5bd1e995))
	}
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "sendworker-chaos-")
		if err != nil {
			return nil, err
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r.dir = dir
	sum, err := r.run(ctx)
	if sum != nil {
		sum.Dir = dir
	}
	if err == nil && sum != nil && len(sum.Violations) == 0 && !c.Keep && c.Dir == "" {
		_ = os.RemoveAll(dir)
		sum.Dir = ""
	} else {
		r.logf("logs and data kept in %s", dir)
	}
	return sum, err
}

type runner struct {
	c     Config
	runID string
	dir   string
	rng   *mrand.Rand
	rngMu sync.Mutex

	redis *redisproc.Proc
	rdb   *redis.Client
	led   *ledger.Ledger
	svc   *approval.Service
	slots []*slot

	start time.Time
	logMu sync.Mutex

	pushed, approvedN atomic.Int64
	approved          sync.Map // send_id -> struct{}
	harness           struct {
		mu     sync.Mutex
		errors []string
	}
	redisMu           sync.Mutex // one restart at a time
	redisRestarts     int
	redisKills        int
	redisRestartTook  time.Duration
	pushDone          atomic.Bool
	pushTook          time.Duration
	killPhaseTook     time.Duration
	firstTerminalDone time.Duration
}

func (r *runner) logf(format string, args ...any) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	el := ""
	if !r.start.IsZero() {
		el = fmt.Sprintf("[%6.1fs] ", time.Since(r.start).Seconds())
	}
	fmt.Fprintf(r.c.Progress, "chaos: %s%s\n", el, fmt.Sprintf(format, args...))
}

func (r *runner) harnessError(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.harness.mu.Lock()
	r.harness.errors = append(r.harness.errors, msg)
	r.harness.mu.Unlock()
	r.logf("harness: %s", msg)
}

func (r *runner) run(ctx context.Context) (*Summary, error) {
	c := r.c
	binDir := c.BinDir
	if binDir == "" {
		binDir = filepath.Join(r.dir, "bin")
		r.logf("building sendworker and wasim into %s", binDir)
		t := time.Now()
		if err := buildBinaries(ctx, binDir); err != nil {
			return nil, err
		}
		r.logf("built in %s", time.Since(t).Round(time.Millisecond))
	}
	swBin, wasimBin := filepath.Join(binDir, "sendworker"), filepath.Join(binDir, "wasim")

	redisDir := filepath.Join(r.dir, "redis")
	if err := os.MkdirAll(redisDir, 0o755); err != nil {
		return nil, err
	}
	proc, err := redisproc.Start(ctx, redisproc.Options{Dir: redisDir, AppendOnly: true, Args: []string{"--appendfsync", c.RedisFsync}})
	if err != nil {
		return nil, err
	}
	r.redis = proc
	defer func() { _ = r.redis.Stop() }()
	r.rdb = redis.NewClient(&redis.Options{Addr: proc.Addr(), PoolSize: 64})
	defer r.rdb.Close()
	r.led = ledger.New(r.rdb, ledger.Options{})
	// No asynq client: the chaos process only enqueues and approves; the
	// workers' releasers hand approved sends to asynq.
	r.svc = approval.New(r.led, nil, approval.Options{})

	apiKey := "chaos-wasim-" + r.runID
	wasim, wasimURL, err := startWasim(c, wasimBin, r.dir, apiKey)
	if err != nil {
		return nil, err
	}
	defer wasim.stop(5 * time.Second)
	r.logf("redis %s (AOF, appendfsync %s), wasim %s (%d accounts × %d chats; faults 500=%.0f%% 429=%.0f%% Retry-After %s, accept-then-drop=%.0f%%, late store=%.0f%% after %s, clock offset %s, latency %s–%s)",
		proc.Addr(), c.RedisFsync, wasimURL, c.Accounts, c.ChatsPerAccount, 100*c.Error500, 100*c.RateLimit, c.RetryAfter, 100*c.AcceptThenDrop,
		100*c.LateStore, c.LateStoreDelay, c.ProviderClockOffset, c.LatencyMin, c.LatencyMax)

	env := workerEnv(c, proc.URL(), wasimURL, apiKey)
	for i := range c.Workers {
		s := &slot{n: i, bin: swBin, env: env, dir: r.dir, logf: r.logf}
		if err := s.start(); err != nil {
			r.stopWorkers()
			return nil, err
		}
		r.slots = append(r.slots, s)
	}
	r.logf("%d sendworker processes running, concurrency %d each", c.Workers, c.Concurrency)

	r.start = time.Now()
	deadline := r.start.Add(c.Timeout)
	runCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	var wg sync.WaitGroup
	chaosCtx, stopChaos := context.WithCancel(runCtx)
	defer stopChaos()
	wg.Go(func() { r.push(runCtx) })
	wg.Go(func() { r.killLoop(chaosCtx) })
	if c.RedisRestartAt >= 0 {
		wg.Go(func() { r.restartRedis(chaosCtx, c.RedisRestartAt, false) })
	}
	if c.RedisKillAt >= 0 {
		wg.Go(func() { r.restartRedis(chaosCtx, c.RedisKillAt, true) })
	}
	allDone := r.waitTerminal(runCtx)
	stopChaos()
	wg.Wait()
	elapsed := time.Since(r.start)
	if !allDone {
		r.logf("deadline: not every send is terminal after %s", c.Timeout)
	}

	r.logf("stopping workers")
	r.stopWorkers()

	// The audit runs on a context of its own: the run's may have expired.
	actx, acancel := context.WithTimeout(ctx, 5*time.Minute)
	defer acancel()
	sum, err := r.audit(actx, wasimURL)
	if err != nil {
		return nil, err
	}
	sum.Elapsed = elapsed
	sum.PushTook = r.pushTook
	sum.KillPhase = r.killPhaseTook
	sum.AllTerminalAfter = r.firstTerminalDone
	for _, s := range r.slots {
		sum.Kills += s.kills
		sum.UnexpectedExits += s.unexpected
	}
	sum.RedisRestarts = r.redisRestarts
	sum.RedisKills = r.redisKills
	sum.RedisRestartTook = r.redisRestartTook
	r.harness.mu.Lock()
	sum.HarnessErrors = append(sum.HarnessErrors, r.harness.errors...)
	r.harness.mu.Unlock()
	sum.judge()
	return sum, nil
}

func (r *runner) stopWorkers() {
	var wg sync.WaitGroup
	for _, s := range r.slots {
		wg.Go(s.stop)
	}
	wg.Wait()
}

// SendID of the i-th send of this run; it is also in the message text so
// the simulator's deliveries can be attributed.
func (r *runner) sendID(i int) string { return fmt.Sprintf("chaos-%s-%06d", r.runID, i) }

func (r *runner) request(i int) tasks.SendRequest {
	c := r.c
	acc := i%c.Accounts + 1
	chat := (i/c.Accounts)%c.ChatsPerAccount + 1
	id := r.sendID(i)
	return tasks.SendRequest{
		SendID:    id,
		Operation: tasks.OpSendMessage,
		AccountID: fmt.Sprintf("acc-%04d", acc),
		ChatID:    fmt.Sprintf("chat-%04d-%05d", acc, chat),
		Text:      "Hello, following up on our call [" + id + "]",
		Metadata:  []byte(fmt.Sprintf(`{"chaos_run":%q,"i":%d}`, r.runID, i)),
	}
}

// push enqueues and approves every send, at PushRate, retrying through
// Redis outages (both calls are idempotent in effect: an enqueue of the same
// content returns the record, an approval that already happened is found in
// the record).
func (r *runner) push(ctx context.Context) {
	c := r.c
	defer func() {
		r.pushTook = time.Since(r.start)
		r.pushDone.Store(true)
		r.logf("pushed %d sends (%d approved) in %s", r.pushed.Load(), r.approvedN.Load(), r.pushTook.Round(time.Millisecond))
	}()
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range next {
				r.pushOne(ctx, i)
			}
		})
	}
	var interval time.Duration
	if c.PushRate > 0 {
		interval = time.Duration(float64(time.Second) / c.PushRate)
	}
	for i := range c.Sends {
		if interval > 0 {
			due := r.start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
}

func (r *runner) pushOne(ctx context.Context, i int) {
	req := r.request(i)
	var rec *tasks.Record
	err := retry(ctx, func() error {
		var err error
		rec, _, err = r.svc.Enqueue(ctx, req, schedulerID)
		return err
	})
	if err != nil {
		r.harnessError("enqueue %s: %v", req.SendID, err)
		return
	}
	r.pushed.Add(1)
	err = retry(ctx, func() error {
		_, err := r.svc.Approve(ctx, req.SendID, rec.Digest, approverID)
		var se *ledger.StateError
		if errors.As(err, &se) {
			// Refused as not pending: did an earlier try (whose reply was
			// lost in a Redis restart) approve it?
			got, gerr := r.led.Get(ctx, req.SendID)
			if gerr != nil {
				return gerr
			}
			if got.Approval != nil && got.Approval.By == approverID {
				return nil
			}
			return permanent{err}
		}
		return err
	})
	if err != nil {
		r.harnessError("approve %s: %v", req.SendID, err)
		return
	}
	r.approved.Store(req.SendID, struct{}{})
	r.approvedN.Add(1)
}

type permanent struct{ error }

// retry calls fn until it succeeds, fails with a permanent error, or a
// minute of failures passed (Redis restarting).
func retry(ctx context.Context, fn func() error) error {
	giveUp := time.Now().Add(time.Minute)
	var ve *tasks.ValidationError
	for {
		err := fn()
		var p permanent
		switch {
		case err == nil:
			return nil
		case errors.As(err, &p):
			return p.error
		case errors.As(err, &ve), errors.Is(err, ledger.ErrConflict):
			return err
		case ctx.Err() != nil, time.Now().After(giveUp):
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// killLoop SIGKILLs a random worker about every KillEvery until the kill
// phase ends (KillFor, or when every send has been pushed).
func (r *runner) killLoop(ctx context.Context) {
	c := r.c
	defer func() { r.killPhaseTook = time.Since(r.start) }()
	if c.KillEvery <= 0 {
		return
	}
	for {
		r.rngMu.Lock()
		d := time.Duration(float64(c.KillEvery) * (0.75 + 0.5*r.rng.Float64()))
		victim := r.rng.IntN(len(r.slots))
		r.rngMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		el := time.Since(r.start)
		if (c.KillFor > 0 && el >= c.KillFor) || (c.KillFor == 0 && r.pushDone.Load()) {
			r.logf("kill phase over")
			return
		}
		r.slots[victim].kill9()
	}
}

// restartRedis restarts Redis at the given time from the start: gracefully
// (SIGTERM, AOF kept), or with SIGKILL (crash: only what appendfsync put on
// disk survives).
func (r *runner) restartRedis(ctx context.Context, at time.Duration, crash bool) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Until(r.start.Add(at))):
	}
	r.redisMu.Lock()
	defer r.redisMu.Unlock()
	t := time.Now()
	var err error
	if crash {
		r.logf("killing redis (SIGKILL, appendfsync %s)", r.c.RedisFsync)
		err = r.redis.CrashRestart(context.WithoutCancel(ctx))
	} else {
		r.logf("restarting redis (graceful, AOF)")
		err = r.redis.Restart(context.WithoutCancel(ctx))
	}
	if err != nil {
		r.harnessError("redis restart: %v", err)
		return
	}
	if crash {
		r.redisKills++
	} else {
		r.redisRestarts++
	}
	r.redisRestartTook = max(r.redisRestartTook, time.Since(t))
	r.logf("redis back after %s", time.Since(t).Round(time.Millisecond))
}

// waitTerminal waits until every send is pushed and every approved one is
// terminal, printing progress; false at the deadline.
func (r *runner) waitTerminal(ctx context.Context) bool {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		counts, err := r.led.Counts(ctx)
		if err != nil {
			continue // Redis restarting
		}
		var terminal int64
		for s, n := range counts {
			if s.Terminal() {
				terminal += n
			}
		}
		done := r.pushDone.Load() && terminal >= r.approvedN.Load()
		if time.Since(lastLog) >= 5*time.Second || done {
			lastLog = time.Now()
			kills := 0
			for _, s := range r.slots {
				s.mu.Lock()
				kills += s.kills
				s.mu.Unlock()
			}
			r.logf("pushed %d, terminal %d, kills %d | %s", r.pushed.Load(), terminal, kills, formatCounts(counts))
		}
		if done {
			r.firstTerminalDone = time.Since(r.start)
			return true
		}
	}
}

func formatCounts(m map[tasks.State]int64) string {
	var parts []string
	for _, s := range tasks.States {
		if m[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", s, m[s]))
		}
	}
	return strings.Join(parts, " ")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
