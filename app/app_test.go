package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

const (
	schedulerToken = "scheduler-token-0123456789"
	approverToken  = "approver-token-0123456789"
	adminToken     = "admin-token-0123456789abc"
)

type daemon struct {
	app  *App
	sim  *wasim.Server
	cfg  *config.Config
	base string
}

// startDaemon runs the real daemon against a throwaway redis-server and the
// simulator over HTTP, configured through the same environment variables an
// operator would set.
func startDaemon(t *testing.T, extraEnv map[string]string) *daemon {
	t.Helper()
	return startDaemonWithLogger(t, extraEnv, nil)
}

func startDaemonWithLogger(t *testing.T, extraEnv map[string]string, log *zap.Logger) *daemon {
	t.Helper()
	redisURL := extraEnv["SENDWORKER_REDIS_URL"]
	if redisURL == "" {
		redisURL = redistest.Start(t).URL()
	}
	sim, err := wasim.Listen("127.0.0.1:0", wasim.Options{APIKey: "sim-key", Seed: wasim.DemoSeed()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	env := map[string]string{
		"SENDWORKER_REDIS_URL":          redisURL,
		"SENDWORKER_PROVIDER_BASE_URL":  sim.URL(),
		"SENDWORKER_PROVIDER_API_KEY":   "sim-key",
		"SENDWORKER_ADMIN_ADDR":         "127.0.0.1:0",
		"SENDWORKER_ADMIN_TOKENS":       "sequencer:scheduler:" + schedulerToken + ",alice:approver:" + approverToken + ",ops:admin:" + adminToken,
		"SENDWORKER_RECONCILE_DELAY":    "1s",
		"SENDWORKER_SHUTDOWN_TIMEOUT":   "5s",
		"SENDWORKER_RATE_MIN_INTERVAL":  "0s",
		"SENDWORKER_RATE_JITTER":        "0s",
		"SENDWORKER_ACCOUNT_HEALTH_TTL": "0s",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	environ := make([]string, 0, len(env))
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, environ)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := New(cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &daemon{app: a, sim: sim, cfg: cfg, base: "http://" + a.Addr()}
}

func (d *daemon) call(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestDaemonEndToEnd drives the daemon as the Sequencer and an approver would:
// enqueue over HTTP, approve the digest shown, and read the result from the
// results stream; the simulator received exactly one delivery.
func TestDaemonEndToEnd(t *testing.T) {
	d := startDaemon(t, nil)
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := d.call(t, "GET", path, "", nil); code != 200 {
			t.Fatalf("%s = %d %s", path, code, body)
		}
	}

	send := map[string]any{
		"send_id": "e2e-1", "operation": "chats_messages_send", "account_id": "acc-paris",
		"chat_id": "chat-paris-lucas", "text": "Hello Lucas, e2e-1", "metadata": map[string]any{"sequence": "s", "step": 1},
	}
	code, body := d.call(t, "POST", "/v1/sends", schedulerToken, send)
	if code != 201 {
		t.Fatalf("enqueue = %d %s", code, body)
	}
	var rec tasks.Record
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.State != tasks.StatePendingApproval || rec.Request.RequestedBy != "sequencer" {
		t.Fatalf("record after enqueue: state %s requested_by %q", rec.State, rec.Request.RequestedBy)
	}
	// Not approved: nothing goes out, however long we wait for the workers.
	time.Sleep(500 * time.Millisecond)
	if n := len(d.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries before approval", n)
	}
	if code, body := d.call(t, "POST", "/v1/sends/e2e-1/approve", approverToken, map[string]string{"digest": strings.Repeat("0", 64)}); code != 409 {
		t.Fatalf("approve with a wrong digest = %d %s", code, body)
	}
	if code, body := d.call(t, "POST", "/v1/sends/e2e-1/approve", approverToken, map[string]string{"digest": rec.Digest}); code != 200 {
		t.Fatalf("approve = %d %s", code, body)
	}

	res := readResult(t, d, "e2e-1")
	if res.State != tasks.StateSent || res.MessageID == "" || res.ApprovedBy != "alice" || string(res.Metadata) == "" {
		t.Fatalf("result = %+v", res)
	}
	var deliveries int
	for _, dl := range d.sim.Sim().Deliveries() {
		if dl.Text == "Hello Lucas, e2e-1" {
			deliveries++
			if dl.MessageID != res.MessageID {
				t.Errorf("result message id %s, simulator stored %s", res.MessageID, dl.MessageID)
			}
		}
	}
	if deliveries != 1 {
		t.Fatalf("%d deliveries, want 1", deliveries)
	}
	code, body = d.call(t, "GET", "/v1/accounts/acc-paris/forecast", approverToken, nil)
	if code != 200 || !strings.Contains(string(body), `"slots_last_hour":1`) {
		t.Fatalf("forecast = %d %s", code, body)
	}
	code, body = d.call(t, "GET", "/v1/sends/e2e-1", approverToken, nil)
	if code != 200 || !strings.Contains(string(body), `"state":"sent"`) {
		t.Fatalf("show = %d %s", code, body)
	}
	code, body = d.call(t, "GET", "/metrics", "", nil)
	if code != 200 {
		t.Fatalf("metrics = %d", code)
	}
	for _, series := range []string{
		`sendworker_provider_request_duration_seconds_count{operation="chats_messages_send",status="201"} 1`,
		`sendworker_provider_request_duration_seconds_count{operation="accounts_get",status="200"}`,
		`sendworker_sends{state="sent"} 1`,
		`sendworker_sends_finished_total{operation="chats_messages_send",reason="",state="sent"} 1`,
		`sendworker_approval_wait_seconds_count 1`,
		`sendworker_asynq_queue_size{queue="sendworker",state="pending"}`,
		`sendworker_outbox_size 0`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

// TestDaemonPauseHoldsApprovedSends: the global kill switch holds a send that
// was already approved; resume lets it go.
func TestDaemonPauseHoldsApprovedSends(t *testing.T) {
	d := startDaemon(t, nil)
	holdOneSend(t, d, "paused-1")
	if code, body := d.call(t, "POST", "/v1/resume", adminToken, nil); code != 200 {
		t.Fatalf("resume = %d %s", code, body)
	}
	if res := readResult(t, d, "paused-1"); res.State != tasks.StateSent {
		t.Fatalf("after resume: %+v", res)
	}
}

// TestDaemonFinishesAnInterruptedResume: a resume that cleared the pause flag
// but failed before moving the held sends (Redis went away) is finished by the
// maintenance loop: the send goes out without a second resume.
func TestDaemonFinishesAnInterruptedResume(t *testing.T) {
	d := startDaemon(t, map[string]string{"SENDWORKER_RECOVERY_GRACE": "10s"})
	holdOneSend(t, d, "paused-2")
	rdb := d.cfg.Redis.UniversalClient()
	defer rdb.Close()
	if err := rdb.Del(context.Background(), d.app.Ledger().Keys().PausedGlobal()).Err(); err != nil {
		t.Fatal(err)
	}
	if res := readResult(t, d, "paused-2"); res.State != tasks.StateSent {
		t.Fatalf("after the interrupted resume: %+v", res)
	}
	rec, err := d.app.Ledger().Get(context.Background(), "paused-2")
	if err != nil {
		t.Fatal(err)
	}
	released := false
	for _, ev := range rec.History {
		released = released || (ev.By == ledger.ResumeBy && ev.Detail == "released by resume")
	}
	if !released {
		t.Fatalf("history has no release by %q: %+v", ledger.ResumeBy, rec.History)
	}
}

// holdOneSend pauses everything, then enqueues and approves a send and waits
// until the worker has held it.
func holdOneSend(t *testing.T, d *daemon, id string) {
	t.Helper()
	if code, body := d.call(t, "POST", "/v1/pause", adminToken, nil); code != 200 {
		t.Fatalf("pause = %d %s", code, body)
	}
	enqueueApproved(t, d, id, "acc-lyon", "chat-lyon-chloe", "Bonjour Chloé")
	waitForWait(t, d, id, tasks.ReasonWaitPaused)
	if n := len(d.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries while paused", n)
	}
}

// TestDaemonOnRedisCluster runs the daemon on a real three-node Redis Cluster:
// a send is enqueued, approved, delivered once and its result read from the
// (hash-tagged) results stream; pause and resume work across the slots.
func TestDaemonOnRedisCluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	d := startDaemon(t, map[string]string{
		"SENDWORKER_REDIS_URL":      cluster.URL(),
		"SENDWORKER_RESULTS_STREAM": "{sendworker}:results",
	})
	holdOneSend(t, d, "cluster-1")
	if code, body := d.call(t, "POST", "/v1/resume", adminToken, nil); code != 200 {
		t.Fatalf("resume = %d %s", code, body)
	}
	if res := readResult(t, d, "cluster-1"); res.State != tasks.StateSent || res.MessageID == "" {
		t.Fatalf("result %+v", res)
	}
	if n := len(d.sim.Sim().Deliveries()); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
	if code, body := d.call(t, "GET", "/v1/sends?state=sent", adminToken, nil); code != 200 || !bytes.Contains(body, []byte("cluster-1")) {
		t.Fatalf("list = %d %s", code, body)
	}
}

// TestDaemonWaitsForAReplica: with SENDWORKER_WAIT_REPLICAS=1 and no replica,
// an approved send is not sent (its attempt's start could be lost at a
// failover): it waits. Once a replica syncs, it goes out, once.
func TestDaemonWaitsForAReplica(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	d := startDaemonWithLogger(t, map[string]string{"SENDWORKER_WAIT_REPLICAS": "1", "SENDWORKER_WAIT_TIMEOUT": "1s"}, zap.New(core))
	if n := logs.FilterMessageSnippet("fewer Redis replicas than SENDWORKER_WAIT_REPLICAS").Len(); n != 1 {
		t.Errorf("%d start-up warnings about the missing replica, want 1", n)
	}
	if n := logs.FilterMessageSnippet("at-most-once not guaranteed through a Redis crash").Len(); n != 1 {
		t.Errorf("%d start-up warnings about durability, want 1", n)
	}
	// The approval is not answered 200 while no replica holds it (it would not survive a
	// failover); it stands on the master, and the send waits for a replica like any attempt.
	code, body := d.call(t, "POST", "/v1/sends", schedulerToken, map[string]any{
		"send_id": "replicated-1", "operation": "chats_messages_send", "account_id": "acc-lyon", "chat_id": "chat-lyon-chloe", "text": "Bonjour Chloé",
	})
	if code != 201 {
		t.Fatalf("enqueue = %d %s", code, body)
	}
	var created tasks.Record
	_ = json.Unmarshal(body, &created)
	if code, body := d.call(t, "POST", "/v1/sends/replicated-1/approve", approverToken, map[string]string{"digest": created.Digest}); code != 503 || !bytes.Contains(body, []byte("not_replicated")) {
		t.Fatalf("approve without a replica = %d %s, want 503 not_replicated", code, body)
	}
	waitForWait(t, d, "replicated-1", tasks.ReasonWaitReplication)
	if n := len(d.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries without a replica", n)
	}
	replica, err := redisproc.Start(context.Background(), redisproc.Options{Dir: t.TempDir(), ReplicaOf: d.cfg.Redis.Addrs[0]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Kill() })
	if res := readResult(t, d, "replicated-1"); res.State != tasks.StateSent {
		t.Fatalf("with a replica: %+v", res)
	}
	if n := len(d.sim.Sim().Deliveries()); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}

// TestDaemonSurvivesASentinelFailover: the daemon on Redis Sentinel (one master, one
// replica, WAIT_REPLICAS=1) delivers a send, the master dies, the Sentinel promotes the
// replica, a replacement replica joins, and a send made after the failover is delivered
// too: each once.
func TestDaemonSurvivesASentinelFailover(t *testing.T) {
	ctx := context.Background()
	master, err := redisproc.Start(ctx, redisproc.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = master.Kill() })
	replica, err := redisproc.Start(ctx, redisproc.Options{Dir: t.TempDir(), ReplicaOf: master.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Kill() })
	sentinel, err := redisproc.StartSentinel(ctx, t.TempDir(), "mymaster", master.Addr(), redisproc.SentinelAuth{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sentinel.Kill)
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr()})
	defer sc.Close()
	waitFor(t, 30*time.Second, func() bool { // the Sentinel must know the replica to promote it
		replicas, err := sc.Replicas(ctx, "mymaster").Result()
		return err == nil && len(replicas) == 1
	})

	d := startDaemon(t, map[string]string{
		"SENDWORKER_REDIS_URL":     "redis-sentinel://" + sentinel.Addr() + "/mymaster",
		"SENDWORKER_WAIT_REPLICAS": "1",
		// Approvals wait for the replica too (503 when it does not acknowledge in time): give a
		// loaded machine the longest wait allowed.
		"SENDWORKER_WAIT_TIMEOUT": "2s",
	})
	sent := func(id string) {
		t.Helper()
		enqueueApproved(t, d, id, "acc-lyon", "chat-lyon-chloe", "Bonjour "+id)
		waitFor(t, 60*time.Second, func() bool {
			r, err := d.app.Ledger().Get(ctx, id)
			return err == nil && r.State == tasks.StateSent
		})
	}
	sent("before-failover")
	// Everything the master holds reaches the replica before the master dies.
	mc := redis.NewClient(&redis.Options{Addr: master.Addr()})
	if n, err := mc.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT before the failover: %d %v", n, err)
	}
	_ = mc.Close()

	if err := master.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		addr, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		return err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == replica.Addr()
	})
	// A replacement replica joins the new master, as ops would start one (a dead master must
	// not come back as a master: see deploy/README.md), so WAIT_REPLICAS=1 can be met again.
	rejoined, err := redisproc.Start(ctx, redisproc.Options{Dir: t.TempDir(), ReplicaOf: replica.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rejoined.Kill() })
	sent("after-failover")
	if rec, err := d.app.Ledger().Get(ctx, "before-failover"); err != nil || rec.State != tasks.StateSent {
		t.Fatalf("the send before the failover after it: %v %v", rec, err)
	}
	counts := map[string]int{}
	for _, del := range d.sim.Sim().Deliveries() {
		counts[del.Text]++
	}
	if len(counts) != 2 || counts["Bonjour before-failover"] != 1 || counts["Bonjour after-failover"] != 1 {
		t.Fatalf("deliveries by text %v, want each send once", counts)
	}
}

// enqueueApproved enqueues a send as the Sequencer and approves it as the approver.
func enqueueApproved(t *testing.T, d *daemon, id, account, chat, text string) {
	t.Helper()
	code, body := d.call(t, "POST", "/v1/sends", schedulerToken, map[string]any{
		"send_id": id, "operation": "chats_messages_send", "account_id": account, "chat_id": chat, "text": text,
	})
	if code != 201 {
		t.Fatalf("enqueue = %d %s", code, body)
	}
	var rec tasks.Record
	_ = json.Unmarshal(body, &rec)
	if code, body := d.call(t, "POST", "/v1/sends/"+id+"/approve", approverToken, map[string]string{"digest": rec.Digest}); code != 200 {
		t.Fatalf("approve = %d %s", code, body)
	}
}

// waitForWait waits until the send is waiting for reason.
func waitForWait(t *testing.T, d *daemon, id string, reason tasks.Reason) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		r, err := d.app.Ledger().Get(context.Background(), id)
		return err == nil && r.State == tasks.StateWaiting && r.Wait != nil && r.Wait.Reason == reason
	})
}

func readResult(t *testing.T, d *daemon, sendID string) tasks.Result {
	t.Helper()
	r := results.NewReader(d.cfg.Redis.UniversalClient(), d.cfg.Results.Stream, "test-"+sendID, "test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.EnsureGroup(ctx, "0"); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		entries, err := r.Read(ctx, 10, 500*time.Millisecond)
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Result.SendID == sendID {
				return e.Result
			}
		}
	}
	rec, _ := d.app.Ledger().Get(context.Background(), sendID)
	t.Fatalf("no result for %s in the stream; record: %+v", sendID, rec)
	return tasks.Result{}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met in time")
}

// TestLogsKeepSecretsAndBodiesOut runs a send, a webhook delivery, a rejected
// request and a provider failure with logging at the default (info) level in
// production JSON form, and checks no token, key, secret or message text
// reached the log.
func TestLogsKeepSecretsAndBodiesOut(t *testing.T) {
	var buf syncBuffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zapcore.InfoLevel)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer receiver.Close()
	const webhookSecret = "webhook-secret-never-logged-0123"
	d := startDaemonWithLogger(t, map[string]string{
		"SENDWORKER_WEBHOOK_URL":    receiver.URL + "/hook?token=url-token-never-logged",
		"SENDWORKER_WEBHOOK_SECRET": webhookSecret,
	}, zap.New(core))
	const text = "Confidential pricing for Lucas: 4,200 EUR"
	code, body := d.call(t, "POST", "/v1/sends", schedulerToken, map[string]any{
		"send_id": "logs-1", "operation": "chats_messages_send", "account_id": "acc-paris",
		"chat_id": "chat-paris-lucas", "text": text,
	})
	if code != 201 {
		t.Fatalf("enqueue = %d %s", code, body)
	}
	var rec tasks.Record
	_ = json.Unmarshal(body, &rec)
	d.call(t, "POST", "/v1/sends/logs-1/approve", "wrong-token-never-logged-xyz", map[string]string{"digest": rec.Digest})
	d.call(t, "POST", "/v1/sends/logs-1/reject", approverToken, map[string]string{"reason": "secret reason text"})
	if code, body := d.call(t, "POST", "/v1/sends/logs-1/approve", approverToken, map[string]string{"digest": rec.Digest}); code != 409 {
		t.Fatalf("approve after reject = %d %s", code, body)
	}
	code, body = d.call(t, "POST", "/v1/sends", schedulerToken, map[string]any{
		"send_id": "logs-2", "operation": "chats_messages_send", "account_id": "acc-paris",
		"chat_id": "chat-paris-lea", "text": text + " (2)",
	})
	if code != 201 {
		t.Fatalf("enqueue = %d %s", code, body)
	}
	_ = json.Unmarshal(body, &rec)
	d.call(t, "POST", "/v1/sends/logs-2/approve", approverToken, map[string]string{"digest": rec.Digest})
	readResult(t, d, "logs-2")
	time.Sleep(time.Second) // let the webhook attempt (and fail) once

	logs := buf.String()
	if !strings.Contains(logs, "logs-2") {
		t.Fatalf("the log does not even mention the send; is logging wired?\n%s", logs)
	}
	for _, secret := range []string{
		schedulerToken, approverToken, adminToken, "wrong-token-never-logged", "sim-key",
		webhookSecret, "url-token-never-logged", text, "secret reason text",
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDaemonMetricsOfWaitsAndBreakers: a send to an account the provider
// reports unhealthy waits (it does not fail), trips the account breaker, and
// both show on /metrics with the wait-time and queue series.
func TestDaemonMetricsOfWaitsAndBreakers(t *testing.T) {
	d := startDaemon(t, nil)
	enqueueApproved(t, d, "down-1", "acc-marseille", "chat-marseille-sarah", "Sarah, a reminder")
	waitForWait(t, d, "down-1", tasks.ReasonWaitAccountDown)
	_, body := d.call(t, "GET", "/metrics", "", nil)
	for _, series := range []string{
		`sendworker_account_breaker_open{account_id="acc-marseille"} 1`,
		`sendworker_wait_seconds_count{reason="account_unhealthy"}`,
		`sendworker_sends{state="waiting"} 1`,
		`sendworker_asynq_queue_size{queue="sendworker",state="scheduled"}`,
		`sendworker_watchdog_watching`,
	} {
		if !strings.Contains(string(body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if n := len(d.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries for an unhealthy account", n)
	}
}

// TestDaemonStartsWithoutRedis: with Redis unreachable at start the daemon does not exit: it
// serves /healthz, answers /readyz 503 with a generic reason (the cause goes to the
// structured log), retries Redis with backoff, and becomes ready and sends once Redis answers.
func TestDaemonStartsWithoutRedis(t *testing.T) {
	srv := redistest.Start(t)
	if err := srv.Stop(); err != nil { // the address of a Redis that is down
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	d := startDaemonWithLogger(t, map[string]string{"SENDWORKER_REDIS_URL": srv.URL()}, zap.New(core))

	if code, _ := d.call(t, "GET", "/healthz", "", nil); code != http.StatusOK {
		t.Fatalf("/healthz = %d while Redis is down, want 200", code)
	}
	code, body := d.call(t, "GET", "/readyz", "", nil)
	if code != http.StatusServiceUnavailable || strings.Contains(string(body), srv.Addr()) || strings.Contains(string(body), "refused") {
		t.Fatalf("/readyz = %d %s, want 503 naming no address or dial error", code, body)
	}
	if logs.FilterMessageSnippet("redis unreachable at start").Len() != 1 {
		t.Fatalf("no structured warning about Redis at start: %v", logs.All())
	}

	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := d.call(t, "GET", "/readyz", "", nil); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready 20 s after Redis came back; logs: %v", logs.All())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Everything runs: a send goes through.
	req := map[string]any{"send_id": "after-redis", "operation": "chats_messages_send", "account_id": "acc-paris",
		"chat_id": "chat-paris-lucas", "text": "Bonjour"}
	if code, body := d.call(t, "POST", "/v1/sends", schedulerToken, req); code != http.StatusCreated {
		t.Fatalf("enqueue: %d %s", code, body)
	}
}

// TestDaemonReloadsTokensFile: the admin tokens file is reloaded when it changes (and on
// ReloadTokens, which SIGHUP calls), atomically: the new tokens work and the removed ones stop
// working without a restart; the log names the identities added and removed, never a token; an
// invalid file changes nothing.
func TestDaemonReloadsTokensFile(t *testing.T) {
	const bobToken = "bob-token-0123456789abcdef"
	file := filepath.Join(t.TempDir(), "tokens")
	write := func(s string) {
		t.Helper()
		// As an operator's tooling does: write aside, rename over (the reader never sees half a file).
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write("sequencer:scheduler:" + schedulerToken + "\nalice:approver:" + approverToken + "\n")
	core, logs := observer.New(zapcore.InfoLevel)
	d := startDaemonWithLogger(t, map[string]string{"SENDWORKER_ADMIN_TOKENS": "", "SENDWORKER_ADMIN_TOKENS_FILE": file}, zap.New(core))
	status := func(token string) int {
		code, _ := d.call(t, "GET", "/v1/stats", token, nil)
		return code
	}
	if status(approverToken) != http.StatusOK || status(bobToken) != http.StatusUnauthorized {
		t.Fatal("initial tokens not in force")
	}

	// Rotation: bob added, alice removed, the sequencer keeps its token.
	write("# rotated\nsequencer:scheduler:" + schedulerToken + "\nbob:approver+admin:" + bobToken + "\n")
	deadline := time.Now().Add(10 * time.Second)
	for status(bobToken) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the changed tokens file was not reloaded within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status(approverToken) != http.StatusUnauthorized || status(schedulerToken) != http.StatusOK {
		t.Fatal("after reload: the removed token still works, or the kept one does not")
	}
	reloads := logs.FilterMessage("admin tokens reloaded").All()
	if len(reloads) != 1 {
		t.Fatalf("%d reload lines, want 1", len(reloads))
	}
	m := reloads[0].ContextMap()
	if fmt.Sprint(m["identities_added"]) != "[bob]" || fmt.Sprint(m["identities_removed"]) != "[alice]" {
		t.Fatalf("reload line %v, want bob added and alice removed", m)
	}

	// A broken file (a token too short) keeps the tokens in force, on a change and on SIGHUP.
	write("bob:approver:short\n")
	if err := d.app.ReloadTokens(); err == nil {
		t.Fatal("ReloadTokens accepted an invalid file")
	}
	if status(bobToken) != http.StatusOK {
		t.Fatal("an invalid tokens file took the tokens in force away")
	}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, tok := range []string{schedulerToken, approverToken, bobToken, "short"} {
			if strings.Contains(line, tok) {
				t.Fatalf("a log line holds a token: %s", line)
			}
		}
	}
}

// TestRedisDownLogsAreRateLimited: while Redis is down, the running daemon does not log the
// same failure several times a second: over a few seconds each message appears at most once
// (the throttle lets one line per message per 30 s through, with a count of the ones held back).
func TestRedisDownLogsAreRateLimited(t *testing.T) {
	srv := redistest.Start(t)
	core, logs := observer.New(zapcore.WarnLevel)
	d := startDaemonWithLogger(t, map[string]string{"SENDWORKER_REDIS_URL": srv.URL()}, zap.New(core))
	if code, _ := d.call(t, "GET", "/readyz", "", nil); code != http.StatusOK {
		t.Fatalf("not ready with Redis up: %d", code)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	// A window of several polls of every loop (1 s each): the rate is what is measured.
	window := time.NewTimer(4 * time.Second)
	probe := time.NewTicker(200 * time.Millisecond) // a busy readiness probe
	defer probe.Stop()
probing:
	for {
		select {
		case <-window.C:
			break probing
		case <-probe.C:
			d.call(t, "GET", "/readyz", "", nil)
		}
	}
	count := map[string]int{}
	for _, e := range logs.All() {
		count[e.Message]++
	}
	for msg, n := range count {
		if n > 1 {
			t.Errorf("%q logged %d times in 4 s while Redis was down", msg, n)
		}
	}
	if len(count) == 0 {
		t.Fatal("nothing logged while Redis was down")
	}
	t.Logf("messages while Redis was down: %v", count)
}
