package approval_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

const (
	testQueue   = "sends"
	testResults = "test:results"
)

// clock is a settable clock shared by the ledger and the Service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one Redis with a ledger, an asynq client and inspector, and a Service.
type env struct {
	t     testing.TB
	srv   *redistest.Server
	rdb   *redis.Client
	clock *clock
	l     *ledger.Ledger
	svc   *approval.Service
	insp  *asynq.Inspector
	ctx   context.Context
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := redistest.Start(t)
	e := &env{t: t, srv: srv, rdb: srv.Client(t), clock: newClock(), ctx: t.Context()}
	e.l = e.newLedger()
	e.svc = e.newService()
	e.insp = asynq.NewInspector(asynq.RedisClientOpt{Addr: srv.Addr()})
	t.Cleanup(func() { _ = e.insp.Close() })
	return e
}

func (e *env) newLedger() *ledger.Ledger {
	return ledger.New(e.srv.Client(e.t), ledger.Options{ResultsStream: testResults, Now: e.clock.Now})
}

// newService is a fresh process: its own Redis connections, ledger and asynq client.
func (e *env) newService() *approval.Service {
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: e.srv.Addr()})
	e.t.Cleanup(func() { _ = client.Close() })
	return approval.New(e.newLedger(), client, approval.Options{Queue: testQueue, Now: e.clock.Now})
}

// send is a valid chats_messages_send request.
func send(id string) tasks.SendRequest {
	return tasks.SendRequest{
		SendID:    id,
		Operation: tasks.OpSendMessage,
		AccountID: "acc-a",
		ChatID:    "chat-alice",
		Text:      "Hello Alice, following up on our call",
		Metadata:  []byte(`{"sequence":"s1","step":2}`),
	}
}

func (e *env) enqueue(id, by string) *tasks.Record {
	e.t.Helper()
	rec, created, err := e.svc.Enqueue(e.ctx, send(id), by)
	if err != nil || !created {
		e.t.Fatalf("Enqueue(%s) = created %v, %v", id, created, err)
	}
	return rec
}

func (e *env) approve(id string) *tasks.Record {
	e.t.Helper()
	rec, err := e.svc.Approve(e.ctx, id, digest(id), "approver-1")
	if err != nil {
		e.t.Fatalf("Approve(%s): %v", id, err)
	}
	return rec
}

func (e *env) state(id string) tasks.State {
	e.t.Helper()
	rec, err := e.l.Get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Get(%s): %v", id, err)
	}
	return rec.State
}

// tasksInQueue lists every task of the send queue, whatever its state.
func (e *env) tasksInQueue() []*asynq.TaskInfo {
	e.t.Helper()
	var all []*asynq.TaskInfo
	for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
		e.insp.ListPendingTasks, e.insp.ListScheduledTasks, e.insp.ListActiveTasks,
		e.insp.ListRetryTasks, e.insp.ListCompletedTasks, e.insp.ListArchivedTasks,
	} {
		ts, err := list(testQueue, asynq.PageSize(10000))
		if err != nil {
			// A queue asynq never saw does not exist yet: no tasks.
			if len(all) == 0 {
				if _, qerr := e.insp.GetQueueInfo(testQueue); qerr != nil {
					return nil
				}
			}
			e.t.Fatalf("list tasks: %v", err)
		}
		all = append(all, ts...)
	}
	return all
}

func (e *env) outbox() int64 {
	e.t.Helper()
	n, err := e.l.OutboxSize(e.ctx)
	if err != nil {
		e.t.Fatalf("OutboxSize: %v", err)
	}
	return n
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, cancel
}

func digest(id string) string {
	r := send(id)
	return r.Digest()
}
