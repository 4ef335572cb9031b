package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

// Test timing: a 1 s provider timeout and a 2 s lease keep lost-outcome tests to a few seconds
// (asynq retries in whole seconds, checked every 100 ms here).
const (
	testProviderTimeout = time.Second
	testLease           = 2 * time.Second
)

// The accounts, contacts, chats and messages of testSeed.
const (
	accA     = "acc-a"
	accB     = "acc-b"
	chatA1   = "chat-a1" // acc-a with contact c1
	chatA2   = "chat-a2" // acc-a with contact c2
	chatB1   = "chat-b1" // acc-b
	c1       = "33611111111@s.whatsapp.net"
	c2       = "33622222222@s.whatsapp.net"
	c3NoChat = "33633333333@s.whatsapp.net" // a contact of acc-a without any chat
	cB1      = "33644444444@s.whatsapp.net"

	msgOwnRecent  = "m-a1-own-recent"  // ours, 2 minutes old
	msgOwnOld     = "m-a1-own-old"     // ours, 20 minutes old: past the edit window
	msgOwnAncient = "m-a1-own-ancient" // ours, 61 hours old: past the delete window
	msgIncoming   = "m-a1-in"          // the contact's, 1 hour old
	msgB          = "m-b1-own"         // acc-b's own message
)

func testSeed() *wasim.Seed {
	a := wasim.SeedAccount{
		ID: accA, Name: "Sales A", PhoneNumber: "33755500101",
		Contacts: []wasim.SeedContact{
			{ID: "att-c1", ProviderID: c1, Name: "Camille"},
			{ID: "att-c2", ProviderID: c2, Name: "Léo"},
			{ID: "att-c3", ProviderID: c3NoChat, Name: "Nina"},
		},
		Chats: []wasim.SeedChat{
			{ID: chatA1, Type: 0, Attendees: []string{c1}, Messages: []wasim.SeedMessage{
				{ID: msgOwnAncient, FromMe: true, Text: "Hello from long ago", Ago: "61h"},
				{ID: msgIncoming, Text: "Tell me more", Ago: "1h"},
				{ID: msgOwnOld, FromMe: true, Text: "Our offer", Ago: "20m"},
				{ID: msgOwnRecent, FromMe: true, Text: "Our offre (typo)", Ago: "2m"},
			}},
			{ID: chatA2, Type: 0, Attendees: []string{c2}, Messages: []wasim.SeedMessage{
				{ID: "m-a2-1", FromMe: true, Text: "Hi Léo", Ago: "3h"},
				{ID: "m-a2-2", Text: "Hi!", Ago: "2h"},
			}},
		},
	}
	// More chats for tests that send many messages at once.
	for i := 0; i < 20; i++ {
		pid := fmt.Sprintf("336700000%02d@s.whatsapp.net", i)
		a.Contacts = append(a.Contacts, wasim.SeedContact{ID: fmt.Sprintf("att-x%02d", i), ProviderID: pid, Name: fmt.Sprintf("X%d", i)})
		a.Chats = append(a.Chats, wasim.SeedChat{ID: fmt.Sprintf("chat-x%02d", i), Type: 0, Attendees: []string{pid},
			Messages: []wasim.SeedMessage{{ID: fmt.Sprintf("m-x%02d", i), Text: "hello", Ago: "1h"}}})
	}
	b := wasim.SeedAccount{
		ID: accB, Name: "Sales B", PhoneNumber: "33755500102",
		Contacts: []wasim.SeedContact{{ID: "att-b1", ProviderID: cB1, Name: "Bob"}},
		Chats: []wasim.SeedChat{{ID: chatB1, Type: 0, Attendees: []string{cB1}, Messages: []wasim.SeedMessage{
			{ID: msgB, FromMe: true, Text: "Hello Bob", Ago: "1m"},
		}}},
	}
	return &wasim.Seed{Accounts: []wasim.SeedAccount{a, b}}
}

type envConfig struct {
	opts      Options                                     // worker options on top of the test defaults
	provider  func(*provider.Client, *wasim.Sim) Provider // wraps the real client (fault toggles)
	noStart   bool                                        // do not start the worker and the releaser
	workerNow func() time.Time
	// replicaNow, when set, is the clock of this replica: the ledger's, the approval stage's
	// and the worker's (a replica whose clock differs from Redis's and the provider's).
	replicaNow func() time.Time
	seed       func(*wasim.Seed) // adds to testSeed
}

type env struct {
	t        *testing.T
	redis    *redistest.Server
	rdb      *redis.Client
	redisOpt asynq.RedisClientOpt
	ledger   *ledger.Ledger
	sim      *wasim.Server
	client   *provider.Client
	approval *approval.Service
	asynq    *asynq.Client
	worker   *Worker
	logs     *observer.ObservedLogs
	opts     Options  // the worker's options, to start another worker like it
	provider Provider // the worker's provider
}

func newEnv(t *testing.T, mod func(*envConfig)) *env {
	t.Helper()
	cfg := &envConfig{}
	if mod != nil {
		mod(cfg)
	}
	e := &env{t: t, redis: redistest.Start(t)}
	e.rdb = e.redis.Client(t)
	e.redisOpt = asynq.RedisClientOpt{Addr: e.redis.Addr()}
	e.ledger = ledger.New(e.rdb, ledger.Options{Now: cfg.replicaNow})

	seed := testSeed()
	if cfg.seed != nil {
		cfg.seed(seed)
	}
	sim, err := wasim.Listen("127.0.0.1:0", wasim.Options{Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	e.sim = sim
	// As the app wires it: every request waits for the global rate (the sending call excepted,
	// which the worker waits for itself) and is observed in the metrics.
	po := provider.Options{BaseURL: sim.URL(), NoAuth: true, Timeout: testProviderTimeout, Observer: cfg.opts.Metrics.ObserveProvider}
	if cfg.opts.Limiter != nil {
		po.Pacer = cfg.opts.Limiter.WaitGlobal
	}
	e.client, err = provider.New(po)
	if err != nil {
		t.Fatal(err)
	}
	var p Provider = e.client
	if cfg.provider != nil {
		p = cfg.provider(e.client, sim.Sim())
	}

	e.asynq = asynq.NewClient(e.redisOpt)
	t.Cleanup(func() { _ = e.asynq.Close() })
	core, logs := observer.New(zapcore.InfoLevel)
	e.logs = logs
	log := zap.New(core)
	e.approval = approval.New(e.ledger, e.asynq, approval.Options{ReleaseInterval: 20 * time.Millisecond, Logger: log, Now: cfg.replicaNow})

	opts := cfg.opts
	opts.Lease = testLease
	opts.ProviderTimeout = testProviderTimeout
	if opts.ReconcileDelay == 0 {
		opts.ReconcileDelay = 500 * time.Millisecond
	}
	if opts.BackoffBase == 0 {
		opts.BackoffBase = 100 * time.Millisecond
	}
	if opts.BackoffMax == 0 {
		opts.BackoffMax = time.Second
	}
	opts.DelayedTaskCheckInterval = 100 * time.Millisecond
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 3 * time.Second
	}
	opts.Concurrency = 10
	opts.Logger = log
	if opts.LateCompletion == 0 {
		opts.LateCompletion = time.Second
	}
	if cfg.replicaNow != nil {
		opts.Now = cfg.replicaNow
	}
	if cfg.workerNow != nil {
		opts.Now = cfg.workerNow
	}
	e.opts, e.provider = opts, p
	e.worker = New(e.redisOpt, e.ledger, p, opts)
	if !cfg.noStart {
		e.start()
	}
	return e
}

// start runs the worker and the approval releaser until the test ends.
func (e *env) start() {
	t := e.t
	if err := e.worker.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.approval.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := e.worker.Stop(sctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

var sendSeq struct {
	sync.Mutex
	n int
}

// newID returns a send id unique in the test binary.
func newID(prefix string) string {
	sendSeq.Lock()
	defer sendSeq.Unlock()
	sendSeq.n++
	return fmt.Sprintf("%s-%d", prefix, sendSeq.n)
}

// message returns a chats_messages_send whose text carries its send id, so deliveries can be
// counted per send.
func message(id, account, chat string) tasks.SendRequest {
	return tasks.SendRequest{SendID: id, Operation: tasks.OpSendMessage, AccountID: account, ChatID: chat,
		Text: "Following up on our call [" + id + "]"}
}

// submit enqueues and approves a send through the approval stage.
func (e *env) submit(req tasks.SendRequest) *tasks.Record {
	e.t.Helper()
	ctx := context.Background()
	rec, _, err := e.approval.Enqueue(ctx, req, "sequencer")
	if err != nil {
		e.t.Fatalf("enqueue %s: %v", req.SendID, err)
	}
	rec, err = e.approval.Approve(ctx, rec.SendID, rec.Digest, "alice")
	if err != nil {
		e.t.Fatalf("approve %s: %v", req.SendID, err)
	}
	return rec
}

// submitRaw stores and approves a send through the ledger directly, bypassing enqueue
// validation: how a hostile or buggy writer could get a request the API would refuse.
func (e *env) submitRaw(req tasks.SendRequest) *tasks.Record {
	e.t.Helper()
	ctx := context.Background()
	req.RequestedBy = "sequencer"
	rec, _, err := e.ledger.Create(ctx, &req, req.Digest(), time.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatalf("create %s: %v", req.SendID, err)
	}
	rec, err = e.ledger.Approve(ctx, rec.SendID, rec.Digest, "alice", "")
	if err != nil {
		e.t.Fatalf("approve %s: %v", req.SendID, err)
	}
	return rec
}

func (e *env) get(id string) *tasks.Record {
	e.t.Helper()
	rec, err := e.ledger.Get(context.Background(), id)
	if err != nil {
		e.t.Fatalf("get %s: %v", id, err)
	}
	return rec
}

// waitFor polls the record until cond holds.
func (e *env) waitFor(id string, timeout time.Duration, what string, cond func(*tasks.Record) bool) *tasks.Record {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rec := e.get(id)
		if cond(rec) {
			return rec
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not %s after %s: state %s reason %s wait %+v history %s", id, what, timeout, rec.State, rec.Reason, rec.Wait, historyString(rec))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (e *env) waitTerminal(id string, timeout time.Duration) *tasks.Record {
	e.t.Helper()
	return e.waitFor(id, timeout, "terminal", func(r *tasks.Record) bool { return r.State.Terminal() })
}

func historyString(rec *tasks.Record) string {
	var b strings.Builder
	for _, ev := range rec.History {
		fmt.Fprintf(&b, "[%s %s a%d %s] ", ev.State, ev.Reason, ev.Attempt, ev.Detail)
	}
	return b.String()
}

// deliveries returns the sending requests wasim received that mention id (in their text), or
// all when id is "".
func (e *env) deliveries(id string) []wasim.Delivery {
	var out []wasim.Delivery
	for _, d := range e.sim.Sim().Deliveries() {
		if id == "" || strings.Contains(d.Text, "["+id+"]") {
			out = append(out, d)
		}
	}
	return out
}

// applied counts the deliveries that changed state (a message posted, a reaction set...).
func applied(ds []wasim.Delivery) int {
	n := 0
	for _, d := range ds {
		if d.Applied {
			n++
		}
	}
	return n
}

// expectResult checks the results stream has exactly one entry for the send, matching rec.
func (e *env) expectResult(rec *tasks.Record) {
	e.t.Helper()
	entries, err := e.rdb.XRange(context.Background(), ledger.DefaultResultsStream, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, en := range entries {
		if en.Values["send_id"] != rec.SendID {
			continue
		}
		n++
		var res tasks.Result
		if err := json.Unmarshal([]byte(en.Values["result"].(string)), &res); err != nil {
			e.t.Fatal(err)
		}
		if res.State != rec.State || res.Reason != rec.Reason || res.MessageID != rec.Result.MessageID {
			e.t.Errorf("stream result %+v, record %s/%s/%s", res, rec.State, rec.Reason, rec.Result.MessageID)
		}
	}
	if n != 1 {
		e.t.Errorf("%s: %d results in the stream, want 1", rec.SendID, n)
	}
}

// taskResult returns the asynq task result of the send's (last) completed task.
func (e *env) taskResult(id string) *tasks.Result {
	e.t.Helper()
	insp := asynq.NewInspector(e.redisOpt)
	defer insp.Close()
	infos, err := insp.ListCompletedTasks(tasks.DefaultQueue, asynq.PageSize(1000))
	if err != nil {
		e.t.Fatal(err)
	}
	var out *tasks.Result
	for _, info := range infos {
		var p tasks.Payload
		_ = json.Unmarshal(info.Payload, &p)
		if p.SendID != id || len(info.Result) == 0 {
			continue
		}
		var r tasks.Result
		if err := json.Unmarshal(info.Result, &r); err != nil {
			e.t.Fatal(err)
		}
		out = &r
	}
	return out
}

// releaseTask takes the send's due outbox entry, as the releaser would, and returns its task
// (for tests that drive the handler directly).
func (e *env) releaseTask(id string) *asynq.Task {
	e.t.Helper()
	due, err := e.ledger.DueForRelease(context.Background(), 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range due {
		if r.SendID != id {
			continue
		}
		if err := e.ledger.MarkAllReleased(context.Background(), []ledger.Release{r}); err != nil {
			e.t.Fatal(err)
		}
		b, _ := json.Marshal(tasks.Payload{SendID: r.SendID, Digest: r.Digest, Gen: r.Gen, AccountID: r.AccountID})
		return asynq.NewTask(r.Operation.TaskType(), b)
	}
	e.t.Fatalf("%s: no due outbox entry", id)
	return nil
}

// taskFor is a task of a send as an earlier releaser made it: without the account hint
// (releaseTask makes them as the releaser does now).
func taskFor(op tasks.Operation, id, digest string, gen int64) *asynq.Task {
	b, _ := json.Marshal(tasks.Payload{SendID: id, Digest: digest, Gen: gen})
	return asynq.NewTask(op.TaskType(), b)
}

// drive runs a send's tasks through the handler directly until it is terminal, honouring
// retries and waits as asynq and the releaser would.
func (e *env) drive(id string, timeout time.Duration) *tasks.Record {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var task *asynq.Task
	for time.Now().Before(deadline) {
		rec := e.get(id)
		if rec.State.Terminal() {
			return rec
		}
		if task == nil {
			due, err := e.ledger.DueForRelease(context.Background(), 1000)
			if err != nil {
				e.t.Fatal(err)
			}
			for _, r := range due {
				if r.SendID == id {
					_ = e.ledger.MarkAllReleased(context.Background(), []ledger.Release{r})
					task = taskFor(r.Operation, r.SendID, r.Digest, r.Gen)
				}
			}
		}
		if task == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		err := e.worker.Handler().ProcessTask(context.Background(), task)
		var re *retryError
		switch {
		case err == nil:
			task = nil
		case errors.As(err, &re):
			time.Sleep(retryDelay(0, err, task))
		default:
			e.t.Fatalf("%s: handler: %v", id, err)
		}
	}
	rec := e.get(id)
	e.t.Fatalf("%s: not terminal after %s: %s %s %s", id, timeout, rec.State, rec.Reason, historyString(rec))
	return nil
}

// faultyProvider wraps the real client and turns a wasim fault on for the duration of the
// first n sending calls only, so reads keep working: the provider really answers 429, 503,
// 504 or drops the connection over HTTP.
type faultyProvider struct {
	*provider.Client
	sim    *wasim.Sim
	faults wasim.Faults
	mu     sync.Mutex
	left   int
	before func()       // optional hook run before every sending call
	base   wasim.Faults // the faults outside the faulty calls (zero: none)
}

func (f *faultyProvider) around(call func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.before != nil {
		f.before()
	}
	if f.left > 0 {
		f.left--
		f.sim.SetFaults(f.faults)
		defer f.sim.SetFaults(f.base)
	}
	call()
}

func (f *faultyProvider) SendMessage(ctx context.Context, chatID string, p provider.SendMessageParams) (res *provider.MessageSent, err error) {
	f.around(func() { res, err = f.Client.SendMessage(ctx, chatID, p) })
	return
}

func (f *faultyProvider) StartChat(ctx context.Context, p provider.StartChatParams) (res *provider.ChatStarted, err error) {
	f.around(func() { res, err = f.Client.StartChat(ctx, p) })
	return
}

func (f *faultyProvider) EditMessage(ctx context.Context, id, text string) (err error) {
	f.around(func() { err = f.Client.EditMessage(ctx, id, text) })
	return
}
