package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// testToken is the token every test passes; no output may ever hold it.
const testToken = "tok-SECRET-5f3a9c"

// call is one request the fake admin API received.
type call struct {
	Method string
	Path   string // escaped path
	Query  string // raw query
	Body   string
	Auth   string
	CType  string
}

// reply is a canned answer.
type reply struct {
	Status int
	Body   string
}

// fakeAPI stands in for the admin API over real HTTP: it records each
// request and answers from respond.
type fakeAPI struct {
	srv     *httptest.Server
	mu      sync.Mutex
	calls   []call
	respond func(c call) reply
}

func newFakeAPI(t *testing.T, respond func(c call) reply) *fakeAPI {
	t.Helper()
	f := &fakeAPI{respond: respond}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := call{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Body: string(body),
			Auth: r.Header.Get("Authorization"), CType: r.Header.Get("Content-Type")}
		f.mu.Lock()
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		rep := f.respond(c)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.Status)
		io.WriteString(w, rep.Body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// always answers every request with the same reply.
func always(status int, body string) func(call) reply {
	return func(call) reply { return reply{status, body} }
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs sendctl against url with the test token in the environment.
func run(t *testing.T, url, stdin string, args ...string) result {
	t.Helper()
	env := map[string]string{"SENDCTL_URL": url, "SENDCTL_TOKEN": testToken}
	return runEnv(t, env, stdin, args...)
}

func runEnv(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := Run(ctx, args, strings.NewReader(stdin), &out, &errOut, func(k string) string { return env[k] })
	r := result{code: code, stdout: out.String(), stderr: errOut.String()}
	for _, s := range []string{r.stdout, r.stderr} {
		if strings.Contains(s, testToken) || (env["SENDCTL_TOKEN"] != "" && strings.Contains(s, env["SENDCTL_TOKEN"])) {
			t.Errorf("sendctl %s printed the token:\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.stdout, r.stderr)
		}
	}
	return r
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var t0 = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

func sampleRequest(id string) tasks.SendRequest {
	return tasks.SendRequest{
		SendID:      id,
		Operation:   tasks.OpSendMessage,
		AccountID:   "acc-1",
		RequestedBy: "sequencer",
		ChatID:      "chat-1",
		Text:        "Hello Marie,\nthanks for your visit. " + strings.Repeat("More words. ", 10) + "END-OF-TEXT",
		Metadata:    json.RawMessage(`{"sequence":"seq-9","step":2}`),
	}
}

func sampleRecord(id string, state tasks.State) tasks.Record {
	req := sampleRequest(id)
	return tasks.Record{
		SendID: id, Request: req, Digest: req.Digest(), State: state,
		CreatedAt: t0, UpdatedAt: t0, ApprovalDeadline: t0.Add(24 * time.Hour),
		History: []tasks.Event{{At: t0, State: tasks.StatePendingApproval, By: "sequencer"}},
	}
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return mustJSON(t, va) == mustJSON(t, vb)
}

func contextCanceled() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx, cancel
}
