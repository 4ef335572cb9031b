package wasim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFaultsValidate(t *testing.T) {
	tests := []struct {
		name    string
		f       Faults
		wantErr string
	}{
		{"zero", Faults{}, ""},
		{"all rates summing to 1", Faults{Error500Rate: 0.1, Error503Rate: 0.2, RateLimitRate: 0.3, Error504Rate: 0.2, AcceptThenDropRate: 0.2}, ""},
		{"fixed latency", Faults{LatencyMin: time.Second}, ""},
		{"latency range", Faults{LatencyMin: time.Millisecond, LatencyMax: time.Second}, ""},
		{"sum over 1", Faults{Error500Rate: 0.6, Error503Rate: 0.5}, "must not exceed 1"},
		{"negative rate", Faults{RateLimitRate: -0.1}, "rate_limit"},
		{"rate over 1", Faults{Error504Rate: 1.5}, "error_504"},
		{"NaN", Faults{AcceptThenDropRate: nanRate()}, "accept_then_drop"},
		{"max below min", Faults{LatencyMin: time.Second, LatencyMax: time.Millisecond}, "latency_max"},
		{"negative latency", Faults{LatencyMin: -time.Second}, "latency_min"},
		{"negative retry-after", Faults{RetryAfter: -time.Second}, "retry_after"},
		{"late store", Faults{LateStoreRate: 0.5, LateStoreDelay: time.Second, ClockOffset: -2 * time.Minute}, ""},
		{"late store without delay", Faults{LateStoreRate: 0.5}, "late_store_delay"},
		{"negative late store delay", Faults{LateStoreDelay: -time.Second}, "late_store_delay"},
		{"late store in the sum", Faults{AcceptThenDropRate: 0.6, LateStoreRate: 0.6, LateStoreDelay: time.Second}, "must not exceed 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error about %s", err, tt.wantErr)
			}
			if _, err := New(Options{Faults: tt.f}); err == nil {
				t.Error("New accepted invalid faults")
			}
			s, _ := New(Options{})
			if err := s.UpdateFaults(tt.f); err == nil {
				t.Error("UpdateFaults accepted invalid faults")
			}
		})
	}
}

func nanRate() float64 {
	zero := 0.0
	return zero / zero
}

func TestSetFaultsPanicsOnInvalid(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("SetFaults accepted invalid faults")
		}
	}()
	s.SetFaults(Faults{Error500Rate: 2})
}

func TestFaultPick(t *testing.T) {
	f := Faults{Error500Rate: 0.1, Error503Rate: 0.1, RateLimitRate: 0.1, Error504Rate: 0.1, AcceptThenDropRate: 0.1,
		LateStoreRate: 0.1, LateStoreDelay: time.Second}
	tests := []struct {
		draw    float64
		sending bool
		want    fault
	}{
		{0, true, fault500},
		{0.05, false, fault500},
		{0.15, false, fault503},
		{0.25, true, fault429},
		{0.35, true, fault504},
		{0.35, false, faultNone},
		{0.45, true, faultDrop},
		{0.45, false, faultNone},
		{0.55, true, faultLate},
		{0.55, false, faultNone},
		{0.6, true, faultNone},
		{0.99, true, faultNone},
	}
	for _, tt := range tests {
		if got := f.pick(tt.draw, tt.sending); got != tt.want {
			t.Errorf("pick(%v, %v) = %v, want %v", tt.draw, tt.sending, got, tt.want)
		}
	}
}

func TestFaultsJSON(t *testing.T) {
	f := Faults{LatencyMin: 5 * time.Millisecond, LatencyMax: time.Second, Error500Rate: 0.1, RetryAfter: 2 * time.Second, AcceptThenDropRate: 0.05,
		LateStoreRate: 0.1, LateStoreDelay: 6 * time.Second, ClockOffset: -2 * time.Minute}
	raw, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"latency_max":"1s"`) || !strings.Contains(string(raw), `"clock_offset":"-2m0s"`) {
		t.Errorf("JSON = %s", raw)
	}
	var back Faults
	if err := json.Unmarshal(raw, &back); err != nil || back != f {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	for _, bad := range []string{`{"error500":0.1}`, `{"latency_min":"soon"}`, `{"retry_after":5}`, `[]`, `{"clock_offset":"ahead"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}

func TestInjectedErrors(t *testing.T) {
	tests := []struct {
		name           string
		faults         Faults
		wantStatus     int
		wantSlug       string
		wantRetryAfter string
	}{
		{"500", Faults{Error500Rate: 1}, 500, "unexpected_error", ""},
		{"503", Faults{Error503Rate: 1}, 503, "service_unavailable", ""},
		{"429 without Retry-After", Faults{RateLimitRate: 1}, 429, "too_many_requests", ""},
		{"429 with Retry-After", Faults{RateLimitRate: 1, RetryAfter: 1500 * time.Millisecond}, 429, "too_many_requests", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Faults = tt.faults })
			read := e.get("/api/v1/chats/chat-alice")
			wantProblem(t, read, tt.wantStatus, tt.wantSlug)
			if got := read.header.Get("Retry-After"); got != tt.wantRetryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetryAfter)
			}
			send := e.sendForm("/api/v1/chats/chat-alice/messages", [][2]string{{"text", "hi"}}, nil)
			wantProblem(t, send, tt.wantStatus, tt.wantSlug)
			edit := e.sendJSON(http.MethodPatch, "/api/v1/messages/m-alice-3", `{"text":"changed"}`)
			wantProblem(t, edit, tt.wantStatus, tt.wantSlug)

			// Nothing changed, and both sending calls are recorded with the injected outcome.
			e.sim.SetFaults(Faults{})
			if n := len(items(t, e.get("/api/v1/chats/chat-alice/messages"))); n != 3 {
				t.Errorf("chat has %d messages after injected errors", n)
			}
			if m, _ := e.sim.Message("m-alice-3"); m.Edited {
				t.Error("message edited despite an injected error")
			}
			ds := e.sim.Deliveries()
			if len(ds) != 2 || ds[0].Outcome != "error_"+strconv.Itoa(tt.wantStatus) || ds[0].Text != "hi" || ds[1].Text != "changed" || ds[0].Applied {
				t.Errorf("deliveries = %+v", ds)
			}
		})
	}
}

func Test504StoresTheMessage(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Faults = Faults{Error504Rate: 1} })
	wantStatus(t, e.get("/api/v1/chats/chat-alice"), 200) // reads are not affected
	r := e.sendForm("/api/v1/chats/chat-alice/messages", [][2]string{{"text", "did it go?"}}, nil)
	wantProblem(t, r, http.StatusGatewayTimeout, "request_timeout")
	ds := e.sim.Deliveries()
	if len(ds) != 1 || ds[0].Outcome != "504" || !ds[0].Applied || ds[0].MessageID == "" {
		t.Fatalf("deliveries = %+v", ds)
	}
	// The caller could not know, but the message is there: reconciliation must find it.
	newest := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=1"))[0]
	if newest["id"] != ds[0].MessageID || newest["text"] != "did it go?" || newest["is_sender"] != float64(1) {
		t.Errorf("newest message = %v", newest)
	}
}

func TestAcceptThenDrop(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Faults = Faults{AcceptThenDropRate: 1} })
	wantStatus(t, e.get("/api/v1/chats/chat-alice"), 200) // reads are not affected

	tests := []struct {
		name  string
		build func() (*http.Request, error)
	}{
		{"send", func() (*http.Request, error) {
			body, ct := multipartBody(t, [][2]string{{"text", "lost answer"}}, nil)
			req, err := http.NewRequest(http.MethodPost, e.srv.URL()+"/api/v1/chats/chat-alice/messages", body)
			if err == nil {
				req.Header.Set("Content-Type", ct)
			}
			return req, err
		}},
		{"reaction", func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPost, e.srv.URL()+"/api/v1/messages/m-alice-2/reaction", strings.NewReader(`{"reaction":"👍"}`))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
			return req, err
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := tt.build()
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-API-KEY", testKey)
			resp, err := e.client.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got a response (%d), want a connection error", resp.StatusCode)
			}
			ds := e.sim.Deliveries()
			if len(ds) != i+1 || ds[i].Outcome != "dropped" || !ds[i].Applied {
				t.Fatalf("deliveries = %+v", ds)
			}
		})
	}
	newest := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=1"))[0]
	if newest["text"] != "lost answer" {
		t.Errorf("newest message = %v, want the dropped send", newest)
	}
	if m, _ := e.sim.Message("m-alice-2"); len(m.Reactions) != 1 {
		t.Errorf("reactions = %+v, want the dropped reaction applied", m.Reactions)
	}
}

func TestLatency(t *testing.T) {
	const d = 30 * time.Millisecond
	e := newEnv(t, func(o *Options) { o.Faults = Faults{LatencyMin: d, LatencyMax: d + 5*time.Millisecond} })
	start := time.Now()
	wantStatus(t, e.get("/api/v1/accounts/acc-a"), 200)
	if took := time.Since(start); took < d {
		t.Errorf("request took %s, want at least %s", took, d)
	}
	// The control endpoints are never slowed down.
	e.sim.SetFaults(Faults{LatencyMin: time.Hour})
	resp, err := e.client.Get(e.srv.URL() + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestFaultRatesAreRoughlyHonoured(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Faults = Faults{Error503Rate: 0.5} })
	failures := 0
	const n = 100
	for range n {
		if e.get("/api/v1/accounts/acc-a").status == 503 {
			failures++
		}
	}
	// Seeded source: deterministic, but check a wide band so the test does not pin the generator.
	if failures < n/4 || failures > 3*n/4 {
		t.Errorf("%d of %d requests failed at rate 0.5", failures, n)
	}
	if st := e.sim.Stats(); st.Requests["accounts_get"]["error_503"] != failures {
		t.Errorf("stats = %+v", st.Requests)
	}
}

// TestClockOffset: the provider's clock shifted by ClockOffset shows in the timestamps of the
// messages stored from then on and in the Date header, not in what was stored before.
func TestClockOffset(t *testing.T) {
	for _, offset := range []time.Duration{2 * time.Minute, -2 * time.Minute} {
		t.Run(offset.String(), func(t *testing.T) {
			e := newEnv(t, nil)
			before := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=1"))[0]["timestamp"]
			e.sim.SetFaults(Faults{ClockOffset: offset})
			r := e.sendForm("/api/v1/chats/chat-alice/messages", [][2]string{{"text", "skewed"}}, nil)
			wantStatus(t, r, http.StatusCreated)
			date, err := http.ParseTime(r.header.Get("Date"))
			if err != nil || !date.Equal(testStart().Add(offset)) {
				t.Errorf("Date = %q (%v), want %s", r.header.Get("Date"), err, testStart().Add(offset))
			}
			msgs := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=3"))
			var got string
			for _, m := range msgs {
				if m["text"] == "skewed" {
					got, _ = m["timestamp"].(string)
				}
			}
			at, err := time.Parse(time.RFC3339Nano, got)
			if err != nil || !at.Equal(testStart().Add(offset)) {
				t.Errorf("stored at %q, want %s", got, testStart().Add(offset))
			}
			if after := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=3")); !containsStamp(after, before) {
				t.Errorf("the message stored before the offset changed its timestamp %v", before)
			}
			if !e.sim.ProviderNow().Equal(testStart().Add(offset)) {
				t.Errorf("ProviderNow = %s", e.sim.ProviderNow())
			}
		})
	}
}

func containsStamp(msgs []map[string]any, stamp any) bool {
	for _, m := range msgs {
		if m["timestamp"] == stamp {
			return true
		}
	}
	return false
}

// TestLateStore: a late-store call is not answered; its message is stored LateStoreDelay after
// the request arrived although the client gave up long before.
func TestLateStore(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newEnv(t, func(o *Options) { o.Faults = Faults{LateStoreRate: 1, LateStoreDelay: delay} })
	wantStatus(t, e.get("/api/v1/chats/chat-alice"), 200) // reads are not affected

	body, ct := multipartBody(t, [][2]string{{"text", "stored later"}}, nil)
	req, err := http.NewRequest(http.MethodPost, e.srv.URL()+"/api/v1/chats/chat-alice/messages", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("X-API-KEY", testKey)
	client := &http.Client{Timeout: 50 * time.Millisecond} // gives up well before the store
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got a response (%d), want none", resp.StatusCode)
	}
	ds := e.sim.Deliveries()
	if len(ds) != 1 || ds[0].Outcome != "late" || ds[0].Applied {
		t.Fatalf("right after the call: deliveries = %+v", ds)
	}
	if n := len(items(t, e.get("/api/v1/chats/chat-alice/messages"))); n != 3 {
		t.Fatalf("chat has %d messages before the late store", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ds = e.sim.Deliveries()
		if ds[0].Outcome != "late" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ds[0].Outcome != "late_stored" || !ds[0].Applied || ds[0].MessageID == "" {
		t.Fatalf("after the delay: deliveries = %+v", ds)
	}
	newest := items(t, e.get("/api/v1/chats/chat-alice/messages?limit=1"))[0]
	if newest["id"] != ds[0].MessageID || newest["text"] != "stored later" {
		t.Errorf("newest message = %v", newest)
	}
	if st := e.sim.Stats(); st.Requests["chats_messages_send"]["late"] != 1 || st.Requests["chats_messages_send"]["late_stored"] != 1 {
		t.Errorf("stats = %+v", st.Requests)
	}
}
