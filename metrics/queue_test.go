package metrics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

const testQueue = "sends"

// TestQueueCollector scrapes a real asynq queue holding tasks in every state
// and a real ledger holding records in several states.
func TestQueueCollector(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()

	inspector := asynq.NewInspectorFromRedisClient(rdb)
	fillQueue(t, srv.Addr(), rdb, inspector)

	l := ledger.New(rdb, ledger.Options{Prefix: "metricstest"})
	createSend(t, l, "p-1", time.Now().Add(time.Hour))
	createSend(t, l, "p-2", time.Now().Add(time.Hour))
	approved := createSend(t, l, "a-1", time.Now().Add(time.Hour))
	rejected := createSend(t, l, "r-1", time.Now().Add(time.Hour))
	canceled := createSend(t, l, "c-1", time.Now().Add(time.Hour))
	if _, err := l.Approve(ctx, approved.SendID, approved.Digest(), "alice", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reject(ctx, rejected.SendID, "alice", "no"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Cancel(ctx, canceled.SendID, "seq", ""); err != nil {
		t.Fatal(err)
	}

	c := NewQueueCollector(inspector, testQueue, l)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	got := snapshotOf(t, reg)
	latency := got["sendworker_asynq_queue_latency_seconds{queue=sends}"]
	delete(got, "sendworker_asynq_queue_latency_seconds{queue=sends}")
	want := map[string]float64{
		"sendworker_asynq_queue_size{queue=sends,state=active}":    1,
		"sendworker_asynq_queue_size{queue=sends,state=archived}":  1,
		"sendworker_asynq_queue_size{queue=sends,state=completed}": 1,
		"sendworker_asynq_queue_size{queue=sends,state=pending}":   3,
		"sendworker_asynq_queue_size{queue=sends,state=retry}":     2,
		"sendworker_asynq_queue_size{queue=sends,state=scheduled}": 1,
		"sendworker_sends{state=approved}":                         1,
		"sendworker_sends{state=canceled}":                         1,
		"sendworker_sends{state=expired}":                          0,
		"sendworker_sends{state=failed}":                           0,
		"sendworker_sends{state=needs_review}":                     0,
		"sendworker_sends{state=pending_approval}":                 2,
		"sendworker_sends{state=rejected}":                         1,
		"sendworker_sends{state=sending}":                          0,
		"sendworker_sends{state=sent}":                             0,
		"sendworker_sends{state=skipped}":                          0,
		"sendworker_sends{state=waiting}":                          0,
		"sendworker_outbox_size{}":                                 1,
		"sendworker_watchdog_watching{}":                           1,
		"sendworker_scrape_error{}":                                0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s", k)
		}
	}
	// The pending tasks have waited since they were enqueued.
	if latency <= 0 {
		t.Errorf("queue latency %v, want > 0 with pending tasks", latency)
	}
	lint(t, reg)
}

// fillQueue leaves testQueue with 1 active, 1 completed, 2 retry, 3 pending,
// 1 scheduled and 1 archived task, using a real asynq server for the states
// only processing reaches.
func fillQueue(t *testing.T, addr string, rdb *redis.Client, inspector *asynq.Inspector) {
	t.Helper()
	release := make(chan struct{})
	server := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
		Queues:         map[string]int{testQueue: 1},
		Concurrency:    4,
		LogLevel:       asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
	})
	err := server.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		switch task.Type() {
		case "fail":
			return errors.New("fails on purpose")
		case "block":
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Shutdown)
	t.Cleanup(func() { close(release) }) // runs before Shutdown

	client := asynq.NewClientFromRedisClient(rdb)
	enqueue := func(typ string, opts ...asynq.Option) *asynq.TaskInfo {
		t.Helper()
		info, err := client.Enqueue(asynq.NewTask(typ, nil), append(opts, asynq.Queue(testQueue))...)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	enqueue("ok", asynq.Retention(time.Hour))
	enqueue("fail", asynq.MaxRetry(5))
	enqueue("fail", asynq.MaxRetry(5))
	enqueue("block")
	waitQueue(t, inspector, func(q *asynq.QueueInfo) bool {
		return q.Completed == 1 && q.Retry == 2 && q.Active == 1 && q.Pending == 0
	})

	// With the queue paused the server takes nothing more: what follows stays
	// pending, scheduled or archived.
	if err := inspector.PauseQueue(testQueue); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		enqueue("ok")
	}
	enqueue("ok", asynq.ProcessIn(time.Hour))
	archived := enqueue("ok", asynq.ProcessIn(time.Hour))
	if err := inspector.ArchiveTask(testQueue, archived.ID); err != nil {
		t.Fatal(err)
	}
	waitQueue(t, inspector, func(q *asynq.QueueInfo) bool {
		return q.Pending == 3 && q.Scheduled == 1 && q.Archived == 1 && q.Active == 1
	})
}

// waitQueue polls the queue until ok holds (the asynq server works on its own
// schedule; there is no event to wait for).
func waitQueue(t *testing.T, inspector *asynq.Inspector, ok func(*asynq.QueueInfo) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last *asynq.QueueInfo
	for time.Now().Before(deadline) {
		q, err := inspector.GetQueueInfo(testQueue)
		if err == nil {
			if ok(q) {
				return
			}
			last = q
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("queue never reached the expected state; last: %+v", last)
}

func createSend(t *testing.T, l *ledger.Ledger, id string, deadline time.Time) *tasks.SendRequest {
	t.Helper()
	req := &tasks.SendRequest{
		SendID: id, Operation: tasks.OpSendMessage, AccountID: "acc-1", RequestedBy: "seq",
		ChatID: "chat-1", Text: "hello " + id,
	}
	if _, _, err := l.Create(context.Background(), req, req.Digest(), deadline); err != nil {
		t.Fatal(err)
	}
	return req
}

// A queue asynq has never seen (nothing enqueued yet, as on a fresh
// deployment) reports zeros, not an error.
func TestQueueCollectorFreshQueue(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	c := NewQueueCollector(asynq.NewInspectorFromRedisClient(rdb), "never-used", ledger.New(rdb, ledger.Options{}))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	for _, state := range asynqStates {
		if s := mustSeries(t, reg, "sendworker_asynq_queue_size", lbl("queue", "never-used", "state", state)); s.value != 0 {
			t.Errorf("%s = %v, want 0", state, s.value)
		}
	}
	if s := mustSeries(t, reg, "sendworker_scrape_error", lbl()); s.value != 0 {
		t.Errorf("scrape_error = %v, want 0", s.value)
	}
	if s := mustSeries(t, reg, "sendworker_outbox_size", lbl()); s.value != 0 {
		t.Errorf("outbox = %v, want 0", s.value)
	}
}

// An unreachable Redis makes the scrape report sendworker_scrape_error 1,
// while the rest of the registry is still served.
func TestQueueCollectorRedisDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })

	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.ApprovalWait(time.Minute)
	reg.MustRegister(NewQueueCollector(asynq.NewInspectorFromRedisClient(rdb), testQueue, ledger.New(rdb, ledger.Options{})))
	got := snapshotOf(t, reg) // fails the test if Gather fails
	want := map[string]float64{"sendworker_scrape_error{}": 1, "sendworker_approval_wait_seconds{}": 1}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v (no size read without Redis, the other metrics served)", got, want)
	}
}

// A Redis that accepts connections and never answers cannot hold a scrape
// longer than its timeout.
func TestQueueCollectorTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })

	c := NewQueueCollector(asynq.NewInspectorFromRedisClient(rdb), testQueue, ledger.New(rdb, ledger.Options{})).(*queueCollector)
	c.timeout = 200 * time.Millisecond
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	// More scrapes than slots: the reads cut by the timeout keep their
	// slots, and a scrape that finds none still ends in time.
	for i := range maxGathers + 2 {
		start := time.Now()
		s := mustSeries(t, reg, "sendworker_scrape_error", lbl())
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("scrape %d took %v with a 200ms timeout", i, took)
		}
		if s.value != 1 {
			t.Errorf("scrape %d: scrape_error = %v, want 1", i, s.value)
		}
	}
}

// The -dev mode runs on miniredis: the collector must work there too.
func TestQueueCollectorMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	client := asynq.NewClientFromRedisClient(rdb)
	for i := range 2 {
		if _, err := client.Enqueue(asynq.NewTask("ok", nil), asynq.Queue(testQueue), asynq.TaskID(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	l := ledger.New(rdb, ledger.Options{})
	createSend(t, l, "p-1", time.Now().Add(time.Hour))

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewQueueCollector(asynq.NewInspectorFromRedisClient(rdb), testQueue, l))
	if s := mustSeries(t, reg, "sendworker_scrape_error", lbl()); s.value != 0 {
		t.Fatalf("scrape_error = %v on miniredis", s.value)
	}
	if s := mustSeries(t, reg, "sendworker_asynq_queue_size", lbl("queue", testQueue, "state", "pending")); s.value != 2 {
		t.Errorf("pending = %v, want 2", s.value)
	}
	if s := mustSeries(t, reg, "sendworker_sends", lbl("state", "pending_approval")); s.value != 1 {
		t.Errorf("pending_approval = %v, want 1", s.value)
	}
}

func TestQueueCollectorWithoutSources(t *testing.T) {
	c := NewQueueCollector(nil, testQueue, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if got, want := snapshotOf(t, reg), map[string]float64{"sendworker_scrape_error{}": 0}; !maps.Equal(got, want) {
		t.Errorf("got %v, want only scrape_error 0", got)
	}
}
