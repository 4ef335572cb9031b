package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/app"
	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

// Identities of the test daemon.
const (
	tokSched = "sched-token-0123456789"   // sequencer: scheduler
	tokAppr  = "appr-token-0123456789"    // approver-1: approver
	tokAdmin = "admin-token-0123456789"   // ops: admin
	tokBoth  = "both-token-0123456789"    // alice: scheduler + approver
	tokLyon  = "lyon-token-0123456789"    // lyon-rep: approver + admin of acc-lyon only
	tokBoss  = "boss-token-0123456789abc" // boss: approver + admin
)

var testTokens = strings.Join([]string{
	"sequencer:scheduler:" + tokSched,
	"approver-1:approver:" + tokAppr,
	"ops:admin:" + tokAdmin,
	"alice:scheduler+approver:" + tokBoth,
	"lyon-rep:approver+admin:" + tokLyon + " accounts=acc-lyon",
	"boss:approver+admin:" + tokBoss,
}, ",")

type daemon struct {
	app  *app.App
	sim  *wasim.Server
	base string
}

// startDaemon runs the whole daemon (the console on its admin listener, the
// worker, the approval loops) on a throwaway redis-server and the simulator.
func startDaemon(t testing.TB, extra map[string]string) *daemon {
	t.Helper()
	sim, err := wasim.Listen("127.0.0.1:0", wasim.Options{APIKey: "sim-key", Seed: wasim.DemoSeed()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	env := map[string]string{
		"SENDWORKER_REDIS_URL":          redistest.Start(t).URL(),
		"SENDWORKER_PROVIDER_BASE_URL":  sim.URL(),
		"SENDWORKER_PROVIDER_API_KEY":   "sim-key",
		"SENDWORKER_ADMIN_ADDR":         "127.0.0.1:0",
		"SENDWORKER_ADMIN_TOKENS":       testTokens,
		"SENDWORKER_RECONCILE_DELAY":    "1s",
		"SENDWORKER_SHUTDOWN_TIMEOUT":   "5s",
		"SENDWORKER_RATE_MIN_INTERVAL":  "0s",
		"SENDWORKER_RATE_JITTER":        "0s",
		"SENDWORKER_ACCOUNT_HEALTH_TTL": "0s",
		"SENDWORKER_LOG_LEVEL":          "error",
	}
	for k, v := range extra {
		env[k] = v
	}
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, environ)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := app.New(cfg, app.Options{})
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
	return &daemon{app: a, sim: sim, base: "http://" + a.Addr()}
}

// sendReq is a reply into an acc-paris chat of the demo seed.
func sendReq(id, text string) tasks.SendRequest {
	return tasks.SendRequest{
		SendID: id, Operation: tasks.OpSendMessage, AccountID: "acc-paris", ChatID: "chat-paris-camille", Text: text,
		Metadata: json.RawMessage(`{"sequence":"seq-1","step":2}`),
	}
}

// enqueue stores a pending send as requester.
func (d *daemon) enqueue(t testing.TB, req tasks.SendRequest, requester string) *tasks.Record {
	t.Helper()
	rec, _, err := d.app.Approval().Enqueue(context.Background(), req, requester)
	if err != nil {
		t.Fatalf("enqueue %s: %v", req.SendID, err)
	}
	return rec
}

func (d *daemon) record(t testing.TB, id string) *tasks.Record {
	t.Helper()
	rec, err := d.app.Ledger().Get(context.Background(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return rec
}

// waitState polls the record until it reaches state.
func (d *daemon) waitState(t testing.TB, id string, state tasks.State) *tasks.Record {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec := d.record(t, id)
		if rec.State == state {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want %s", id, rec.State, state)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// browser is an HTTP client with cookies that does not follow redirects.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
}

func (d *daemon) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: d.base, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, header map[string]string) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

func (b *browser) get(path string) page { b.t.Helper(); return b.do("GET", path, nil, nil) }

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	return b.do("POST", path, form, nil)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token of a page's forms.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	p := b.get(path)
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no CSRF field on %s (%d)", path, p.status)
	}
	return m[1]
}

// signIn signs in with token through the sign-in form.
func (b *browser) signIn(token string) {
	b.t.Helper()
	p := b.post("/console/login", url.Values{"csrf": {b.csrf("/console/login")}, "token": {token}, "next": {"/console/"}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/" {
		b.t.Fatalf("sign-in: %d %s", p.status, p.header.Get("Location"))
	}
}

func wantPage(t testing.TB, p page, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d:\n%s", p.status, status, p.body)
	}
	for _, s := range contains {
		if !strings.Contains(p.body, s) {
			t.Fatalf("page lacks %q:\n%s", s, p.body)
		}
	}
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func regexpFind(t testing.TB, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no match of %s", re)
	}
	return m[1]
}

// chatTexts is every message text of a chat in the simulator, one a line.
func (d *daemon) chatTexts(t testing.TB, chatID string) string {
	t.Helper()
	pc, err := provider.New(provider.Options{BaseURL: d.sim.URL(), APIKey: "sim-key"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := pc.ListMessages(context.Background(), chatID, provider.ListMessagesParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range list.Items {
		out = append(out, m.Text)
	}
	return strings.Join(out, "\n")
}
