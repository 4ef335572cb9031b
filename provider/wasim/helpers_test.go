package wasim

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// testStart is the fixed "now" of every test that does not move the clock.
func testStart() time.Time { return time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC) }

// fakeClock is an injectable clock that only moves when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: testStart()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Provider ids of the test seed.
const (
	pidAlice = "33611111111@s.whatsapp.net"
	pidBob   = "33622222222@s.whatsapp.net"
	pidCarol = "33633333333@s.whatsapp.net" // known to acc-a, no chat yet
	pidDan   = "123456789012@lid"           // known to acc-a, no chat yet
	pidEve   = "33644444444@s.whatsapp.net" // contact of the disconnected acc-b
	pidSelfA = "33700000001@s.whatsapp.net"
	testKey  = "test-key"
)

// testSeed is a small, hand-written state: acc-a (OK) with single chats with Alice and Bob and a
// group, acc-b (CREDENTIALS) with one chat.
func testSeed() *Seed {
	return &Seed{Accounts: []SeedAccount{
		{
			ID: "acc-a", Name: "Account A", PhoneNumber: "33700000001", CreatedAt: "2026-01-01T00:00:00.000Z",
			Contacts: []SeedContact{
				{ID: "att-alice", ProviderID: pidAlice, Name: "Alice"},
				{ID: "att-bob", ProviderID: pidBob, Name: "Bob"},
				{ID: "att-carol", ProviderID: pidCarol, Name: "Carol"},
				{ID: "att-dan", ProviderID: pidDan, Name: "Dan"},
			},
			Chats: []SeedChat{
				{ID: "chat-alice", Type: chatSingle, Attendees: []string{pidAlice}, Messages: []SeedMessage{
					{ID: "m-alice-1", FromMe: true, Text: "Hello Alice", Ago: "2h", Seen: true},
					{ID: "m-alice-2", Text: "Hi there", Ago: "1h", Seen: true},
					{ID: "m-alice-3", FromMe: true, Text: "Great, talk soon", Ago: "5m"},
				}},
				{ID: "chat-bob", Type: chatSingle, Attendees: []string{pidBob}, UnreadCount: 2, Messages: []SeedMessage{
					{ID: "m-bob-1", FromMe: true, Text: "Hello Bob", Ago: "70h", Seen: true},
					{ID: "m-bob-2", Text: "Hey", Ago: "3h"},
					{ID: "m-bob-3", Text: "Still there?", Ago: "2h30m"},
				}},
				{ID: "chat-group", Type: chatGroup, Name: "Project", Attendees: []string{pidAlice, pidBob}, Messages: []SeedMessage{
					{ID: "m-group-1", Sender: pidBob, Text: "Welcome", Ago: "10h"},
				}},
			},
		},
		{
			ID: "acc-b", Name: "Account B", PhoneNumber: "+33700000002", Status: statusCredentials,
			Contacts: []SeedContact{{ID: "att-eve", ProviderID: pidEve, Name: "Eve"}},
			Chats: []SeedChat{
				{ID: "chat-eve", Type: chatSingle, Attendees: []string{pidEve}, Messages: []SeedMessage{
					{ID: "m-eve-1", FromMe: true, Text: "Hello Eve", Ago: "1m"},
				}},
			},
		},
	}}
}

// env is a simulator on a real port with a client for it.
type env struct {
	t      *testing.T
	srv    *Server
	sim    *Sim
	clock  *fakeClock
	client *http.Client
}

// newEnv starts a simulator with the test seed, API key auth and a fixed clock; mutate may
// change the options first.
func newEnv(t *testing.T, mutate func(*Options)) *env {
	t.Helper()
	clock := newClock()
	opts := Options{
		APIKey: testKey,
		Seed:   testSeed(),
		Now:    clock.Now,
		Rand:   rand.New(rand.NewPCG(1, 2)),
	}
	if mutate != nil {
		mutate(&opts)
	}
	srv, err := Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, srv: srv, sim: srv.Sim(), clock: clock, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// reply is a decoded response.
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// request sends a request with the test API key unless headers override auth.
func (e *env) request(method, path string, body io.Reader, contentType string, headers map[string]string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL()+path, body)
	if err != nil {
		e.t.Fatalf("NewRequest: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-API-KEY", testKey)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: body is not a JSON object: %v: %s", method, path, err, raw)
		}
	}
	return r
}

func (e *env) get(path string) reply {
	e.t.Helper()
	return e.request(http.MethodGet, path, nil, "", nil)
}

func (e *env) sendJSON(method, path, body string) reply {
	e.t.Helper()
	return e.request(method, path, strings.NewReader(body), "application/json", nil)
}

// formFile is one file part of a multipart body.
type formFile struct {
	field, name, contentType string
	data                     []byte
}

// multipartBody builds a body the way a client should: with the writer's own boundary.
func multipartBody(t *testing.T, fields [][2]string, files []formFile) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="`+f.field+`"; filename="`+f.name+`"`)
		if f.contentType != "" {
			h.Set("Content-Type", f.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func (e *env) sendForm(path string, fields [][2]string, files []formFile) reply {
	e.t.Helper()
	body, ct := multipartBody(e.t, fields, files)
	return e.request(http.MethodPost, path, body, ct, nil)
}

// wantProblem checks a problem-details answer.
func wantProblem(t *testing.T, r reply, status int, slug string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	if got := r.body["type"]; got != "errors/"+slug {
		t.Fatalf("type = %v, want errors/%s; body %s", got, slug, r.raw)
	}
	for _, k := range []string{"title", "detail", "instance"} {
		if s, _ := r.body[k].(string); s == "" {
			t.Errorf("problem %q is empty: %s", k, r.raw)
		}
	}
	if got, _ := r.body["status"].(float64); int(got) != status {
		t.Errorf("problem status = %v, want %d", r.body["status"], status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func wantStatus(t *testing.T, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
}

// wantFlags checks that each key is a JSON number 0 or 1, never a boolean.
func wantFlags(t *testing.T, obj map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		v, ok := obj[k].(float64)
		if !ok || (v != 0 && v != 1) {
			t.Errorf("%s = %#v, want the number 0 or 1", k, obj[k])
		}
	}
}

func wantStamps(t *testing.T, obj map[string]any, keys ...string) {
	t.Helper()
	stampRE := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)
	for _, k := range keys {
		s, _ := obj[k].(string)
		if !stampRE.MatchString(s) {
			t.Errorf("%s = %#v, want an ISO-8601 millisecond UTC stamp", k, obj[k])
		}
	}
}

func items(t *testing.T, r reply) []map[string]any {
	t.Helper()
	raw, ok := r.body["items"].([]any)
	if !ok {
		t.Fatalf("items missing: %s", r.raw)
	}
	out := make([]map[string]any, 0, len(raw))
	for _, it := range raw {
		out = append(out, it.(map[string]any))
	}
	return out
}

func ids(list []map[string]any) []string {
	out := make([]string, 0, len(list))
	for _, it := range list {
		out = append(out, it["id"].(string))
	}
	return out
}
