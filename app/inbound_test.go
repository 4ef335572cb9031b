package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

const inboundSecret = "inbound-secret-0123456789"

// TestDaemonActsOnProviderEvents runs two replicas on one Redis and one simulator whose webhook
// points at the first replica: a contact's reply, a STOP and an account's disconnection, written
// through the simulator's control API, reach the ledger through the receiver within seconds.
func TestDaemonActsOnProviderEvents(t *testing.T) {
	redisURL := redistest.Start(t).URL()
	env := map[string]string{"SENDWORKER_REDIS_URL": redisURL, "SENDWORKER_INBOUND_SECRET": inboundSecret,
		"SENDWORKER_ACCOUNT_HEALTH_TTL": "1m"}
	d1 := startDaemon(t, env)
	env["SENDWORKER_PROVIDER_BASE_URL"] = d1.sim.URL() // both replicas talk to the same provider
	d2 := startDaemon(t, env)
	if err := d1.sim.Sim().SetWebhook(wasim.WebhookConfig{URL: d1.base + "/v1/provider/events",
		Secret: inboundSecret, RetryDelay: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	sim := d1.sim.URL()
	control := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, sim+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s = %d", method, path, resp.StatusCode)
		}
	}

	// A forged event changes nothing.
	code, _ := d1.call(t, "POST", "/v1/provider/events", "", map[string]any{"AccountStatus": map[string]string{
		"account_id": "acc-paris", "account_type": "WHATSAPP", "message": "CREDENTIALS"}})
	if code != http.StatusUnauthorized {
		t.Fatalf("unsigned event = %d", code)
	}

	// Three sends of one chat: one pending approval, two approved but waiting for their window.
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	notBefore := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for i, id := range []string{"r-pending", "r-waiting-1", "r-waiting-2"} {
		body := map[string]any{"send_id": id, "operation": "chats_messages_send", "account_id": "acc-paris",
			"chat_id": "chat-paris-lucas", "text": "follow-up " + id, "stop_if_replied_since": since}
		if i > 0 {
			body["window"] = map[string]any{"not_before": notBefore}
		}
		code, out := d2.call(t, "POST", "/v1/sends", schedulerToken, body)
		if code != 201 {
			t.Fatalf("enqueue = %d %s", code, out)
		}
		if i > 0 {
			var rec tasks.Record
			_ = json.Unmarshal(out, &rec)
			if code, out := d2.call(t, "POST", "/v1/sends/"+id+"/approve", approverToken, map[string]string{"digest": rec.Digest}); code != 200 {
				t.Fatalf("approve = %d %s", code, out)
			}
			waitForWait(t, d2, id, tasks.ReasonWaitWindow)
		}
	}
	start := time.Now()
	control("POST", "/_sim/chats/chat-paris-lucas/incoming", `{"text":"Yes, let's talk tomorrow"}`)
	waitFor(t, 2*time.Second, func() bool {
		for _, id := range []string{"r-pending", "r-waiting-1", "r-waiting-2"} {
			r, err := d2.app.Ledger().Get(context.Background(), id)
			if err != nil || r.State != tasks.StateSkipped || r.Reason != tasks.ReasonContactReplied {
				return false
			}
		}
		return true
	})
	t.Logf("reply → three sends skipped in %s", time.Since(start))

	// STOP: the contact is opted out, and a send enqueued afterwards is refused at dispatch.
	control("POST", "/_sim/chats/chat-lyon-chloe/incoming", `{"text":"STOP"}`)
	waitFor(t, 2*time.Second, func() bool {
		code, body := d2.call(t, "GET", "/v1/optouts", approverToken, nil)
		return code == 200 && strings.Contains(string(body), "STOP")
	})
	enqueueApproved(t, d2, "after-stop", "acc-lyon", "chat-lyon-chloe", "one more thing")
	if res := readResult(t, d2, "after-stop"); res.State != tasks.StateSkipped || res.Reason != tasks.ReasonOptedOut {
		t.Fatalf("send after STOP: %+v", res)
	}

	// The account is disconnected: its breaker is open for the other replica before its next send.
	control("PUT", "/_sim/accounts/acc-paris/status", `{"status":"CREDENTIALS"}`)
	waitFor(t, 2*time.Second, func() bool {
		open, _, _ := d2.app.Ledger().BreakerState(context.Background(), "acc-paris")
		return open
	})
	enqueueApproved(t, d2, "after-credentials", "acc-paris", "chat-paris-lea", "are you there?")
	waitForWait(t, d2, "after-credentials", tasks.ReasonWaitAccountDown)

	for _, dl := range d1.sim.Sim().Deliveries() {
		if strings.HasPrefix(dl.Text, "follow-up") || dl.Text == "one more thing" || dl.Text == "are you there?" {
			t.Errorf("delivered %q", dl.Text)
		}
	}
	code, events := d2.call(t, "GET", "/v1/provider/events?limit=100", approverToken, nil)
	for _, want := range []string{`"outcome":"replied"`, `"outcome":"opted_out"`, `"outcome":"breaker_open"`, `"r-waiting-2"`} {
		if code != 200 || !bytes.Contains(events, []byte(want)) {
			t.Errorf("events log (%d) lacks %s: %s", code, want, events)
		}
	}
	if bytes.Contains(events, []byte("talk tomorrow")) {
		t.Error("the events log holds message text")
	}
	_, metrics := d1.call(t, "GET", "/metrics", "", nil)
	for _, series := range []string{
		`sendworker_inbound_events_total{outcome="accepted",type="message_received"} 2`,
		`sendworker_inbound_events_total{outcome="unauthorized",type="unknown"} 1`,
	} {
		if !bytes.Contains(metrics, []byte(series)) {
			t.Errorf("metrics lack %s", series)
		}
	}
}
