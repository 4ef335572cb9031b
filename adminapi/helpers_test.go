package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

// Tokens of the test API. "both" holds scheduler and approver, to prove
// that a requester cannot approve their own send even with both roles.
const (
	tokSched = "sched-token-0123456789"
	tokAppr  = "appr-token-0123456789"
	tokAdmin = "admin-token-0123456789"
	tokBoth  = "both-token-0123456789"
	tokBad   = "not-a-configured-token"
	tokRoot  = "root-token-0123456789" // every role: for the fuzz targets
	simKey   = "sim-key"
	// secretText is message text that must never reach a log line.
	secretText = "Confidential offer for Camille 4242"
)

var testTokens = []adminapi.Token{
	{Identity: "sequencer", Roles: []string{adminapi.RoleScheduler}, Token: tokSched},
	{Identity: "approver-1", Roles: []string{adminapi.RoleApprover}, Token: tokAppr},
	{Identity: "admin-1", Roles: []string{adminapi.RoleAdmin}, Token: tokAdmin},
	{Identity: "alice", Roles: []string{adminapi.RoleScheduler, adminapi.RoleApprover}, Token: tokBoth},
	{Identity: "root", Roles: []string{adminapi.RoleScheduler, adminapi.RoleApprover, adminapi.RoleAdmin}, Token: tokRoot},
}

type env struct {
	t     testing.TB
	ts    *httptest.Server
	h     http.Handler
	svc   *approval.Service
	l     *ledger.Ledger
	rl    *ratelimit.Limiter // the Forecaster, on the same Redis, with testLimits
	logs  *observer.ObservedLogs
	ready error
}

// testLimits are the rate limits of every account of the test API's limiter.
var testLimits = config.Limits{MinInterval: time.Minute, HourlyCap: 3, DailyCap: 10, NewChatsHourlyCap: 1, NewChatsDailyCap: 2}

type envOption func(*adminapi.Options)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	srv := redistest.Start(t)
	l := ledger.New(srv.Client(t), ledger.Options{})
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: srv.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	svc := approval.New(l, client, approval.Options{Queue: "sends", Logger: log})

	sim, err := wasim.New(wasim.Options{APIKey: simKey, Seed: wasim.DemoSeed()})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	pc, err := provider.New(provider.Options{BaseURL: simSrv.URL, APIKey: simKey, ReadRetries: -1})
	if err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "sendworker_test_total", Help: "test"}))
	rl := ratelimit.New(srv.Client(t), ratelimit.Options{
		LimitsFor: func(string) config.Limits { return testLimits },
		Rand:      func() float64 { return 0 },
	})
	e := &env{t: t, svc: svc, l: l, rl: rl, logs: logs}
	o := adminapi.Options{
		Tokens:     testTokens,
		Provider:   pc,
		Forecaster: rl,
		Ready:      func(context.Context) error { return e.ready },
		Metrics:    promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Logger:     log,
	}
	for _, f := range opts {
		f(&o)
	}
	e.h = adminapi.New(svc, o)
	e.ts = httptest.NewServer(e.h)
	t.Cleanup(e.ts.Close)
	return e
}

// reply is a decoded answer.
type reply struct {
	status int
	header http.Header
	raw    []byte
}

func (r reply) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.raw, v); err != nil {
		t.Fatalf("decode %s: %v", r.raw, err)
	}
}

// apiErr is the error envelope.
type apiErr struct {
	Error struct {
		Code    string             `json:"code"`
		Message string             `json:"message"`
		Fields  []tasks.FieldError `json:"fields"`
	} `json:"error"`
}

func (r reply) err(t testing.TB) apiErr {
	t.Helper()
	var e apiErr
	r.decode(t, &e)
	if e.Error.Code == "" {
		t.Fatalf("no error code in %d %s", r.status, r.raw)
	}
	return e
}

func (r reply) record(t testing.TB) tasks.Record {
	t.Helper()
	var rec tasks.Record
	r.decode(t, &rec)
	return rec
}

// do sends a request; body may be a string (JSON), []byte, an io.Reader
// (sent chunked) or any value (marshalled).
func (e *env) do(method, path, token string, body any) reply {
	e.t.Helper()
	return e.doCT(method, path, token, "application/json", body)
}

func (e *env) doCT(method, path, token, contentType string, body any) reply {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, chunked := body.(io.Reader); chunked {
		req.ContentLength = -1
	}
	if rd != nil && contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := e.ts.Client().Do(req.WithContext(ctx))
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || path != "/metrics" {
		if !strings.HasPrefix(ct, "application/json") {
			e.t.Errorf("%s %s: Content-Type %q, want JSON (%d %s)", method, path, ct, resp.StatusCode, raw)
		}
	}
	return reply{status: resp.StatusCode, header: resp.Header, raw: raw}
}

// sendJSON is a valid chats_messages_send request.
func sendJSON(id, text string) map[string]any {
	return map[string]any{
		"send_id":    id,
		"operation":  "chats_messages_send",
		"account_id": "acc-paris",
		"chat_id":    "chat-paris-camille",
		"text":       text,
		"metadata":   map[string]any{"sequence": "seq-1", "step": 1},
	}
}

func digestOf(id, text string) string {
	r := tasks.SendRequest{SendID: id, Operation: tasks.OpSendMessage, AccountID: "acc-paris", ChatID: "chat-paris-camille", Text: text}
	return r.Digest()
}

// enqueue creates a send through the API as the scheduler.
func (e *env) enqueue(id string) tasks.Record {
	e.t.Helper()
	r := e.do("POST", "/v1/sends", tokSched, sendJSON(id, secretText))
	if r.status != http.StatusCreated {
		e.t.Fatalf("enqueue %s: %d %s", id, r.status, r.raw)
	}
	return r.record(e.t)
}

func wantStatus(t testing.TB, r reply, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if code != "" {
		if got := r.err(t).Error.Code; got != code {
			t.Fatalf("code %q, want %q: %s", got, code, r.raw)
		}
	}
}

func fieldNames(e apiErr) []string {
	var out []string
	for _, f := range e.Error.Fields {
		out = append(out, f.Field)
	}
	return out
}
