package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sendworker/sendworker/app"
	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/provider"
)

// The parent runs each measured pipeline in a fresh child process (this same
// binary, re-executed with childEnv set) so that each one's memory is its
// own: the child reads its VmHWM/VmRSS from /proc/self/status at the end.
// Redis and the simulator live in the parent.
const (
	childEnv         = "SENDWORKER_BENCH_CHILD" // "asynq" or "sendworker"
	childRedisEnv    = "SENDWORKER_BENCH_REDIS"
	childWasimEnv    = "SENDWORKER_BENCH_WASIM"
	childNEnv        = "SENDWORKER_BENCH_N"
	childConcEnv     = "SENDWORKER_BENCH_CONCURRENCY"
	childIdleEnv     = "SENDWORKER_BENCH_IDLE_CONNS"
	childLogEnv      = "SENDWORKER_BENCH_LOG_LEVEL"
	childProfEnv     = "SENDWORKER_BENCH_CPUPROFILE"
	childAccountsEnv = "SENDWORKER_BENCH_ACCOUNTS"
	childChatsEnv    = "SENDWORKER_BENCH_CHATS"
	baselineQueue    = "bench-noop"
	baselineTaskTy   = "bench:noop"
	resultsStream    = "sendworker:results"
)

// childReport is what a child prints (one JSON object on stdout).
type childReport struct {
	Kind        string  `json:"kind"`
	N           int     `json:"n"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"` // start of the server to the last task done
	PerSecond   float64 `json:"per_second"`
	VmHWMkB     int64   `json:"vm_hwm_kb"`
	VmRSSkB     int64   `json:"vm_rss_kb"`
	Goroutines  int     `json:"goroutines_peak"`
	CPUSeconds  float64 `json:"cpu_seconds"` // user+sys of the child, whole life
	// PollCommands are the child's own Redis commands (completion polling),
	// by command, for the parent to subtract from the Redis-side delta.
	PollCommands map[string]int64 `json:"poll_commands"`

	// sendworker only.
	States       map[string]int64 `json:"states,omitempty"`
	ProviderReqs int64            `json:"provider_requests,omitempty"`
	ProviderByOp map[string]int64 `json:"provider_by_op,omitempty"`
	// Per send, in microseconds: the provider time (sum of its requests,
	// measured around http.DefaultTransport), the span from its first
	// provider request to the worker's "send finished" log, and the span
	// minus the provider time (the overhead inside the handler).
	ProviderUS []int64 `json:"provider_us,omitempty"`
	SpanUS     []int64 `json:"span_us,omitempty"`
	OverheadUS []int64 `json:"overhead_us,omitempty"`
	Spans      int     `json:"spans,omitempty"`
}

func runChild(kind string) error {
	addr := os.Getenv(childRedisEnv)
	n, err1 := strconv.Atoi(os.Getenv(childNEnv))
	conc, err2 := strconv.Atoi(os.Getenv(childConcEnv))
	if addr == "" || errors.Join(err1, err2) != nil {
		return errors.New("child: missing environment")
	}
	var rep *childReport
	var err error
	switch kind {
	case "asynq":
		rep, err = childAsynq(addr, n, conc)
	case "sendworker":
		rep, err = childSendworker(addr, os.Getenv(childWasimEnv), n, conc)
	case "floor":
		rep, err = childFloor(addr, os.Getenv(childWasimEnv), n, conc)
	default:
		return fmt.Errorf("child: unknown kind %q", kind)
	}
	if err != nil {
		return err
	}
	rep.Kind, rep.N, rep.Concurrency = kind, n, conc
	rep.VmHWMkB, rep.VmRSSkB = procStatus("VmHWM"), procStatus("VmRSS")
	rep.CPUSeconds = selfCPU()
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// selfCPU is the user+sys CPU time of this process so far, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procStatus reads one "Name:  123 kB" line of /proc/self/status.
func procStatus(name string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return -1
}

// goroutinePeak samples runtime.NumGoroutine until stop.
func goroutinePeak(stop <-chan struct{}) func() int {
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if g := int64(numGoroutine()); g > peak.Load() {
				peak.Store(g)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int { <-done; return int(peak.Load()) }
}

// childAsynq serves the n pre-enqueued no-op tasks of the baseline queue.
func childAsynq(addr string, n, conc int) (*childReport, error) {
	return serveBaseline(addr, n, conc, func(context.Context, int) error { return nil })
}

// childFloor serves the n pre-enqueued tasks of the baseline queue with a handler that makes
// only the two provider calls of a send (chats_get, then chats_messages_send), with the
// daemon's provider client and transport: asynq plus the provider, nothing of sendworker.
func childFloor(addr, wasimURL string, n, conc int) (*childReport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(conc+conc/2, 16)
	tr.MaxIdleConns = max(tr.MaxIdleConns, tr.MaxIdleConnsPerHost)
	pc, err := provider.New(provider.Options{BaseURL: wasimURL, APIKey: "bench-key", Timeout: 5 * time.Second,
		HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return nil, err
	}
	accounts, err1 := strconv.Atoi(os.Getenv(childAccountsEnv))
	chats, err2 := strconv.Atoi(os.Getenv(childChatsEnv))
	if errors.Join(err1, err2) != nil || accounts < 1 || chats < 1 {
		return nil, errors.New("child: missing accounts or chats")
	}
	return serveBaseline(addr, n, conc, func(ctx context.Context, i int) error {
		acc, chat := benchChat(i, accounts, chats)
		c, err := pc.GetChat(ctx, chat, acc)
		if err != nil {
			return err
		}
		_, err = pc.SendMessage(ctx, c.ID, provider.SendMessageParams{AccountID: acc, Text: benchText(i)})
		return err
	})
}

// serveBaseline serves the n pre-enqueued tasks of the baseline queue with handle (given the
// task's sequence number) and reports when asynq has acknowledged them all.
func serveBaseline(addr string, n, conc int, handle func(context.Context, int) error) (*childReport, error) {
	var done, seq atomic.Int64
	all := make(chan struct{})
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
		Concurrency: conc,
		Queues:      map[string]int{baselineQueue: 1},
		Logger:      zap.NewNop().Sugar(),
		LogLevel:    asynq.ErrorLevel,
	})
	stop := make(chan struct{})
	peak := goroutinePeak(stop)
	start := time.Now()
	var failed atomic.Int64
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		if err := handle(ctx, int(seq.Add(1)-1)); err != nil {
			// Counted, not retried: the rate of a run with failures would not be comparable.
			failed.Add(1)
		}
		if done.Add(1) == int64(n) {
			close(all)
		}
		return nil
	})); err != nil {
		return nil, err
	}
	<-all
	// The last handlers returned; wait for asynq to mark them done.
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	polls := int64(0)
	for {
		polls++
		if l, err := rdb.LLen(context.Background(), "asynq:{"+baselineQueue+"}:active").Result(); err == nil && l == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	close(stop)
	rep := &childReport{Seconds: took.Seconds(), PerSecond: float64(n) / took.Seconds(), Goroutines: peak()}
	srv.Shutdown()
	rep.PollCommands = map[string]int64{"llen": polls}
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d of %d tasks failed", f, n)
	}
	return rep, nil
}

// childSendworker runs the daemon (app.New, in this process) until the n
// approved sends the parent put in the outbox are all terminal.
func childSendworker(addr, wasimURL string, n, conc int) (*childReport, error) {
	// The provider transport (app.Options.ProviderTransport) is wrapped to
	// time every request and attribute it to its asynq task (the request
	// context carries the task id). Its base is the transport the daemon
	// uses by default: idle connections sized to the concurrency.
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = max(conc+conc/2, 16)
	if v, _ := strconv.Atoi(os.Getenv(childIdleEnv)); v > 0 {
		// Experiment (-idle-conns): another idle-connection limit.
		base.MaxIdleConnsPerHost = v
	}
	base.MaxIdleConns = max(base.MaxIdleConns, base.MaxIdleConnsPerHost)
	tr := &timingTransport{base: base, byTask: map[string]*taskTiming{}}

	env := map[string]string{
		"SENDWORKER_REDIS_URL":                 "redis://" + addr + "/0",
		"SENDWORKER_PROVIDER_BASE_URL":         wasimURL,
		"SENDWORKER_PROVIDER_API_KEY":          "bench-key",
		"SENDWORKER_PROVIDER_TIMEOUT":          "5s",
		"SENDWORKER_ADMIN_ADDR":                "127.0.0.1:0",
		"SENDWORKER_ADMIN_TOKENS":              "bench-sequencer:scheduler:bench-scheduler-token-01,bench-approver:approver:bench-approver-token-001",
		"SENDWORKER_CONCURRENCY":               strconv.Itoa(conc),
		"SENDWORKER_RATE_MIN_INTERVAL":         "0s",
		"SENDWORKER_RATE_JITTER":               "0s",
		"SENDWORKER_RATE_HOURLY_CAP":           "0",
		"SENDWORKER_RATE_DAILY_CAP":            "0",
		"SENDWORKER_RATE_NEW_CHATS_HOURLY_CAP": "0",
		"SENDWORKER_RATE_NEW_CHATS_DAILY_CAP":  "0",
		"SENDWORKER_RATE_GLOBAL_RPS":           "0",
		"SENDWORKER_LOG_LEVEL":                 "info",
	}
	if v := os.Getenv(childLogEnv); v != "" {
		env["SENDWORKER_LOG_LEVEL"] = v
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// The daemon logs JSON at info (two lines per send); here they are
	// encoded as usual and discarded, and "send finished" is timed.
	finished := &finishCapture{at: map[string]time.Time{}}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewTee(zapcore.NewCore(enc, zapcore.AddSync(discard{}), zapcore.InfoLevel), finished)
	a, err := app.New(cfg, app.Options{Logger: zap.New(core), ProviderTransport: tr})
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()

	if path := os.Getenv(childProfEnv); path != "" {
		f, err := os.Create(fmt.Sprintf("%s.c%d", path, conc))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	stop := make(chan struct{})
	peak := goroutinePeak(stop)
	start := time.Now()
	if err := a.Start(context.Background()); err != nil {
		return nil, err
	}
	polls := int64(0)
	for {
		polls++
		if l, err := rdb.XLen(context.Background(), resultsStream).Result(); err == nil && l >= int64(n) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(start)
	close(stop)
	rep := &childReport{Seconds: took.Seconds(), PerSecond: float64(n) / took.Seconds(), Goroutines: peak()}

	counts, err := a.Ledger().Counts(context.Background())
	if err == nil {
		rep.States = map[string]int64{}
		for s, c := range counts {
			if c > 0 {
				rep.States[string(s)] = c
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = a.Stop(ctx)
	rep.PollCommands = map[string]int64{"xlen": polls, "zcard": int64(len(counts))}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	finished.mu.Lock()
	defer finished.mu.Unlock()
	rep.ProviderReqs = tr.total
	rep.ProviderByOp = tr.byOp
	for taskID, tt := range tr.byTask {
		sendID, _, ok := cutLast(taskID, "/r")
		if !ok {
			continue
		}
		end, ok := finished.at[sendID]
		if !ok || end.Before(tt.first) {
			continue
		}
		span := end.Sub(tt.first)
		rep.ProviderUS = append(rep.ProviderUS, tt.total.Microseconds())
		rep.SpanUS = append(rep.SpanUS, span.Microseconds())
		rep.OverheadUS = append(rep.OverheadUS, (span - tt.total).Microseconds())
	}
	rep.Spans = len(rep.SpanUS)
	for _, s := range [][]int64{rep.ProviderUS, rep.SpanUS, rep.OverheadUS} {
		slices.Sort(s)
	}
	return rep, nil
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// taskTiming is the provider time of one asynq task.
type taskTiming struct {
	first time.Time     // start of its first provider request
	total time.Duration // sum of its provider requests
}

// timingTransport times every provider request, by asynq task.
type timingTransport struct {
	base   http.RoundTripper
	mu     sync.Mutex
	byTask map[string]*taskTiming
	byOp   map[string]int64
	total  int64
}

func (t *timingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		// The request ends when its body has been read: time it then.
		resp.Body = &timedBody{ReadCloser: resp.Body, done: func() { t.record(req, start, time.Since(start)) }}
	} else {
		t.record(req, start, time.Since(start))
	}
	return resp, err
}

func (t *timingTransport) record(req *http.Request, start time.Time, d time.Duration) {
	id, _ := asynq.GetTaskID(req.Context())
	op := req.Method + " " + opOf(req.URL.Path)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total++
	if t.byOp == nil {
		t.byOp = map[string]int64{}
	}
	t.byOp[op]++
	if id == "" {
		return
	}
	tt := t.byTask[id]
	if tt == nil {
		tt = &taskTiming{first: start}
		t.byTask[id] = tt
	}
	if start.Before(tt.first) {
		tt.first = start
	}
	tt.total += d
}

// opOf reduces /api/v1/chats/chat-0001-00003/messages to /chats/{id}/messages.
func opOf(path string) string {
	segs := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	for i := 1; i < len(segs); i += 2 {
		segs[i] = "{id}"
	}
	return "/" + strings.Join(segs, "/")
}

type timedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// finishCapture is a zap core that keeps the time of each "send finished".
type finishCapture struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (f *finishCapture) Enabled(l zapcore.Level) bool { return l >= zapcore.InfoLevel }
func (f *finishCapture) With(fs []zapcore.Field) zapcore.Core {
	return &finishWith{f: f, fields: slices.Clone(fs)}
}
func (f *finishCapture) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == "send finished" {
		return ce.AddCore(e, f)
	}
	return ce
}
func (f *finishCapture) Write(e zapcore.Entry, fields []zapcore.Field) error {
	f.note(e, fields)
	return nil
}
func (f *finishCapture) Sync() error { return nil }

func (f *finishCapture) note(e zapcore.Entry, fields []zapcore.Field) {
	for _, fl := range fields {
		if fl.Key == "send_id" {
			f.mu.Lock()
			f.at[fl.String] = e.Time
			f.mu.Unlock()
			return
		}
	}
}

// finishWith carries the fields added with Logger.With (the worker adds
// send_id that way).
type finishWith struct {
	f      *finishCapture
	fields []zapcore.Field
}

func (w *finishWith) Enabled(l zapcore.Level) bool { return w.f.Enabled(l) }
func (w *finishWith) With(fs []zapcore.Field) zapcore.Core {
	return &finishWith{f: w.f, fields: append(slices.Clone(w.fields), fs...)}
}
func (w *finishWith) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == "send finished" {
		return ce.AddCore(e, w)
	}
	return ce
}
func (w *finishWith) Write(e zapcore.Entry, fields []zapcore.Field) error {
	w.f.note(e, append(slices.Clone(w.fields), fields...))
	return nil
}
func (w *finishWith) Sync() error { return nil }
