package wasim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// control calls a /_sim/ endpoint without provider credentials.
func (e *env) control(method, path, body string) reply {
	e.t.Helper()
	var r reply
	if body == "" {
		r = e.request(method, path, nil, "", map[string]string{"X-API-KEY": ""})
	} else {
		r = e.request(method, path, strings.NewReader(body), "application/json", map[string]string{"X-API-KEY": ""})
	}
	return r
}

func TestControlFaults(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Faults = Faults{Error500Rate: 0.25} })
	r := e.control(http.MethodGet, "/_sim/faults", "")
	wantStatus(t, r, 200)
	if r.body["error_500_rate"] != 0.25 || r.body["latency_min"] != "0s" {
		t.Errorf("faults = %s", r.raw)
	}
	tests := []struct {
		name       string
		body       string
		wantStatus int
		want       Faults
	}{
		{"replace", `{"rate_limit_rate":0.5,"retry_after":"3s","latency_min":"1ms","latency_max":"2ms"}`, 200,
			Faults{RateLimitRate: 0.5, RetryAfter: 3 * time.Second, LatencyMin: time.Millisecond, LatencyMax: 2 * time.Millisecond}},
		{"late store and clock offset", `{"late_store_rate":0.2,"late_store_delay":"6s","clock_offset":"-2m"}`, 200,
			Faults{LateStoreRate: 0.2, LateStoreDelay: 6 * time.Second, ClockOffset: -2 * time.Minute}},
		{"late store without delay", `{"late_store_rate":0.2}`, 400, Faults{}},
		{"sum over 1", `{"error_500_rate":0.7,"error_503_rate":0.7}`, 400, Faults{}},
		{"unknown key", `{"error_rate":0.1}`, 400, Faults{}},
		{"bad duration", `{"latency_min":"fast"}`, 400, Faults{}},
		{"not JSON", `nope`, 400, Faults{}},
		{"clear", `{}`, 200, Faults{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.sim.Faults()
			r := e.control(http.MethodPut, "/_sim/faults", tt.body)
			wantStatus(t, r, tt.wantStatus)
			if tt.wantStatus != 200 {
				if _, ok := r.body["error"].(string); !ok {
					t.Errorf("error body = %s", r.raw)
				}
				if e.sim.Faults() != before {
					t.Error("faults changed on a refused PUT")
				}
				return
			}
			if got := e.sim.Faults(); got != tt.want {
				t.Errorf("faults = %+v, want %+v", got, tt.want)
			}
		})
	}
	wantStatus(t, e.control(http.MethodPost, "/_sim/faults", "{}"), http.StatusMethodNotAllowed)
}

func TestControlDeliveriesAndStats(t *testing.T) {
	e := newEnv(t, nil)
	for _, text := range []string{"one", "two", "three"} {
		wantStatus(t, e.sendForm("/api/v1/chats/chat-alice/messages", [][2]string{{"text", text}}, nil), 201)
	}
	wantStatus(t, e.get("/api/v1/chats"), 200)
	tests := []struct {
		query     string
		wantTexts []string
		wantLast  float64
	}{
		{"", []string{"one", "two", "three"}, 3},
		{"?since=1", []string{"two", "three"}, 3},
		{"?since=3", []string{}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := e.control(http.MethodGet, "/_sim/deliveries"+tt.query, "")
			wantStatus(t, r, 200)
			var got struct {
				Deliveries []Delivery `json:"deliveries"`
				LastSeq    int        `json:"last_seq"`
			}
			if err := json.Unmarshal(r.raw, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Deliveries) != len(tt.wantTexts) || float64(got.LastSeq) != tt.wantLast {
				t.Fatalf("deliveries = %s", r.raw)
			}
			for i, d := range got.Deliveries {
				if d.Text != tt.wantTexts[i] || d.Outcome != "ok" || d.Operation != "chats_messages_send" || d.At.IsZero() {
					t.Errorf("delivery %d = %+v", i, d)
				}
			}
		})
	}
	wantStatus(t, e.control(http.MethodGet, "/_sim/deliveries?since=-1", ""), 400)

	r := e.control(http.MethodGet, "/_sim/stats", "")
	wantStatus(t, r, 200)
	var st Stats
	if err := json.Unmarshal(r.raw, &st); err != nil {
		t.Fatal(err)
	}
	if st.Requests["chats_messages_send"]["ok"] != 3 || st.Requests["chats_list"]["ok"] != 1 || st.Deliveries != 3 {
		t.Errorf("stats = %s", r.raw)
	}
}

func TestControlAccountStatus(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, path, body string
		wantStatus       int
	}{
		{"disconnect", "/_sim/accounts/acc-a/status", `{"status":"CREDENTIALS"}`, 200},
		{"unknown status", "/_sim/accounts/acc-a/status", `{"status":"BROKEN"}`, 400},
		{"unknown account", "/_sim/accounts/nope/status", `{"status":"OK"}`, 404},
		{"unknown key", "/_sim/accounts/acc-a/status", `{"state":"OK"}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantStatus(t, e.control(http.MethodPut, tt.path, tt.body), tt.wantStatus)
		})
	}
	// acc-a is now disconnected: sends refuse, reads answer.
	wantProblem(t, e.sendForm("/api/v1/chats/chat-alice/messages", [][2]string{{"text", "hi"}}, nil), 401, "disconnected_account")
	wantProblem(t, e.sendJSON(http.MethodPatch, "/api/v1/messages/m-alice-3", `{"text":"x"}`), 401, "disconnected_account")
	wantProblem(t, e.request(http.MethodDelete, "/api/v1/messages/m-alice-3", nil, "", nil), 401, "disconnected_account")
	wantStatus(t, e.get("/api/v1/chats/chat-alice/messages"), 200)
	acc := e.get("/api/v1/accounts/acc-a").body
	if acc["sources"].([]any)[0].(map[string]any)["status"] != "CREDENTIALS" {
		t.Errorf("account = %v", acc)
	}
	// CONNECTED counts as healthy, like OK.
	if err := e.sim.SetAccountStatus("acc-a", "CONNECTED"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.sendForm("/api/v1/chats/chat-alice/messages", [][2]string{{"text", "hi"}}, nil), 201)
}

func TestControlIncoming(t *testing.T) {
	e := newEnv(t, nil)
	e.clock.Advance(time.Minute)
	r := e.control(http.MethodPost, "/_sim/chats/chat-alice/incoming", `{"text":"Je suis intéressée"}`)
	wantStatus(t, r, 201)
	id, _ := r.body["message_id"].(string)
	newest := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=1"))[0]
	if newest["id"] != id || newest["is_sender"] != float64(0) || newest["sender_id"] != pidAlice || newest["timestamp"] != "2026-11-24T10:01:00.000Z" {
		t.Errorf("newest = %v", newest)
	}
	if c := e.get("/api/v1/chats/chat-alice").body; c["unread_count"] != float64(1) {
		t.Errorf("unread_count = %v", c["unread_count"])
	}
	r = e.control(http.MethodPost, "/_sim/chats/chat-alice/incoming", `{"text":"earlier","at":"2026-11-24T09:00:00.000Z"}`)
	wantStatus(t, r, 201)
	if m, _ := e.sim.Message(r.body["message_id"].(string)); !m.Timestamp.Equal(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("timestamp = %v", m.Timestamp)
	}
	for _, tt := range []struct {
		path, body string
		want       int
	}{
		{"/_sim/chats/nope/incoming", `{"text":"x"}`, 404},
		{"/_sim/chats/chat-alice/incoming", `{"text":""}`, 400},
		{"/_sim/chats/chat-alice/incoming", `{"text":"x","at":"yesterday"}`, 400},
		{"/_sim/chats/chat-alice/outgoing", `{"text":"x"}`, 404},
	} {
		wantStatus(t, e.control(http.MethodPost, tt.path, tt.body), tt.want)
	}
	if _, err := e.sim.AddIncomingMessage("nope", "x", time.Time{}); err == nil {
		t.Error("AddIncomingMessage accepted an unknown chat")
	}
}

func TestWebhookPostsIncomingAndStatusWithRetries(t *testing.T) {
	var calls atomic.Int64
	var mu sync.Mutex
	var bodies []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test-Secret") != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError) // the first attempt fails: retried
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer hook.Close()
	srv, err := Listen("127.0.0.1:0", Options{Seed: DemoSeed()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Sim().SetWebhook(WebhookConfig{URL: hook.URL, Header: "X-Test-Secret", Secret: "s3cret", RetryDelay: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Sim().AddIncomingMessage("chat-paris-lucas", "STOP", time.Time{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := len(bodies)
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery after retry; attempts %+v", srv.Sim().WebhookAttempts())
		}
		<-time.After(5 * time.Millisecond)
	}
	if err := srv.Sim().SetAccountStatus("acc-paris", "CREDENTIALS"); err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		n := len(bodies)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no status event")
		}
		<-time.After(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(bodies[0], `"event":"message_received"`) || !strings.Contains(bodies[0], `"is_sender":false`) ||
		!strings.Contains(bodies[1], `"AccountStatus"`) || !strings.Contains(bodies[1], "CREDENTIALS") {
		t.Fatalf("bodies %q", bodies)
	}
	if a := srv.Sim().WebhookAttempts(); len(a) != 3 || a[0].Status != 500 {
		t.Fatalf("attempts %+v", a)
	}
}
