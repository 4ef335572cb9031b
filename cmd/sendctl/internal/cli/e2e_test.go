package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/adminapi/wire"
	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
)

// TestEndToEnd drives the real admin API (approval service, ledger, a
// throwaway redis-server) through Run: enqueue → list → show → approve →
// stats, the way an operator would.
func TestEndToEnd(t *testing.T) {
	srv := redistest.Start(t)
	l := ledger.New(srv.Client(t), ledger.Options{})
	aq := asynq.NewClient(asynq.RedisClientOpt{Addr: srv.Addr()})
	t.Cleanup(func() { _ = aq.Close() })
	svc := approval.New(l, aq, approval.Options{Queue: "sends"})
	const (
		schedToken = "e2e-sched-token-0123456789"
		apprToken  = "e2e-appr-token-0123456789"
		bothToken  = "e2e-both-token-0123456789"
	)
	h := adminapi.New(svc, adminapi.Options{Tokens: []adminapi.Token{
		{Identity: "sequencer", Roles: []string{adminapi.RoleScheduler}, Token: schedToken},
		{Identity: "approver-1", Roles: []string{adminapi.RoleApprover}, Token: apprToken},
		{Identity: "alice", Roles: []string{adminapi.RoleScheduler, adminapi.RoleApprover}, Token: bothToken},
	}})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)

	as := func(token string, wantCode int, stdin string, args ...string) result {
		t.Helper()
		res := runEnv(t, map[string]string{"SENDCTL_URL": ts.URL, "SENDCTL_TOKEN": token}, stdin, args...)
		if res.code != wantCode {
			t.Fatalf("sendctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, wantCode, res.stdout, res.stderr)
		}
		return res
	}
	text := "Bonjour Camille,\nmerci pour votre visite."
	enqueue := []string{"enqueue", "-send-id", "e2e-1", "-op", "send", "-account", "acc-1", "-chat", "chat-1",
		"-text", text, "-metadata", `{"sequence":"seq-1","step":1}`}

	res := as(schedToken, exitOK, "", enqueue...)
	if !strings.Contains(res.stdout, "e2e-1: enqueued (state pending_approval)") {
		t.Errorf("enqueue:\n%s", res.stdout)
	}
	res = as(schedToken, exitOK, "", enqueue...)
	if !strings.Contains(res.stdout, "already enqueued with the same content") {
		t.Errorf("idempotent enqueue:\n%s", res.stdout)
	}
	changed := append(append([]string{}, enqueue[:len(enqueue)-2]...), "-text", "other text")
	res = as(schedToken, exitConflict, "", changed...)
	if !strings.Contains(res.stderr, "conflict") {
		t.Errorf("changed content:\n%s", res.stderr)
	}
	res = as(schedToken, exitInvalid, "", "enqueue", "-send-id", "e2e-2", "-op", "create", "-account", "acc-1",
		"-attendee", "+33 6 12 34 56 78", "-text", "hi")
	if !strings.Contains(res.stderr, "attendees_ids[0]: a raw phone number is not a known attendee") {
		t.Errorf("cold recipient not named:\n%s", res.stderr)
	}
	res = as(apprToken, exitAuth, "", enqueue...)
	if !strings.Contains(res.stderr, "forbidden (HTTP 403)") {
		t.Errorf("approver enqueue:\n%s", res.stderr)
	}

	res = as(apprToken, exitOK, "", "list", "-state", "pending_approval")
	if !strings.Contains(res.stdout, "e2e-1") || !strings.Contains(res.stdout, "Bonjour Camille,↵merci") {
		t.Errorf("list:\n%s", res.stdout)
	}

	res = as(apprToken, exitOK, "", "show", "e2e-1")
	var digest string
	for _, line := range strings.Split(res.stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "DIGEST" {
			digest = f[1]
		}
	}
	req := tasks.SendRequest{Operation: tasks.OpSendMessage, AccountID: "acc-1", ChatID: "chat-1", Text: text}
	if digest != req.Digest() {
		t.Fatalf("show prints digest %q, want %q:\n%s", digest, req.Digest(), res.stdout)
	}
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(res.stdout, "  | "+line+"\n") {
			t.Errorf("show lacks the text line %q:\n%s", line, res.stdout)
		}
	}

	res = as(apprToken, exitConflict, "", "approve", "e2e-1", "-digest", strings.Repeat("0", 64))
	want := "sendctl: approve e2e-1: wrong digest: 000000000000… is not the digest of send e2e-1 (" + digest[:12] + "…)"
	if !strings.HasPrefix(res.stderr, want) {
		t.Errorf("wrong digest:\n%s\nwant prefix %s", res.stderr, want)
	}
	as(schedToken, exitAuth, "", "approve", "e2e-1", "-digest", digest) // a scheduler is no approver
	res = as(apprToken, exitOK, "", "approve", "e2e-1", "-digest", digest)
	if !strings.Contains(res.stdout, "e2e-1: approved digest "+digest[:12]+"… (state approved)") {
		t.Errorf("approve:\n%s", res.stdout)
	}
	res = as(apprToken, exitConflict, "", "approve", "e2e-1", "-digest", digest)
	if !strings.Contains(res.stderr, "not pending") {
		t.Errorf("second approve:\n%s", res.stderr)
	}

	res = as(apprToken, exitOK, "", "-o", "json", "show", "e2e-1")
	var rec tasks.Record
	if err := json.Unmarshal([]byte(res.stdout), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.State != tasks.StateApproved || rec.Approval == nil || rec.Approval.By != "approver-1" || rec.Approval.Digest != digest ||
		rec.Request.RequestedBy != "sequencer" {
		t.Errorf("record after approve: %+v approval %+v", rec, rec.Approval)
	}

	res = as(apprToken, exitOK, "", "stats")
	for _, want := range []string{"pending_approval  0", "approved          1", "total             1"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stats lacks %q:\n%s", want, res.stdout)
		}
	}
	as(apprToken, exitNotFound, "", "show", "nope")

	// A requester holding the approver role still cannot approve their own send.
	res = as(bothToken, exitOK, "", "enqueue", "-send-id", "e2e-3", "-op", "send", "-account", "acc-1", "-chat", "chat-1", "-text", "self")
	var own string
	for _, line := range strings.Split(res.stdout, "\n") {
		if d, ok := strings.CutPrefix(line, "digest: "); ok {
			own = d
		}
	}
	res = as(bothToken, exitConflict, "", "approve", "e2e-3", "-digest", own)
	if !strings.Contains(res.stderr, "self-approval refused") {
		t.Errorf("self-approval:\n%s", res.stderr)
	}

	// The audit trail: who decided what, filtered, and exported as JSON Lines across pages.
	res = as(apprToken, exitOK, "", "audit", "-send", "e2e-1")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "enqueued") || !strings.Contains(lines[1], "sequencer") ||
		!strings.Contains(lines[2], "approved") || !strings.Contains(lines[2], "approver-1") || !strings.Contains(lines[2], "digest "+digest[:12]) {
		t.Errorf("audit -send e2e-1:\n%s", res.stdout)
	}
	res = as(apprToken, exitOK, "", "audit", "-actor", "alice", "-from", "2000-01-01")
	if !strings.Contains(res.stdout, "e2e-3") || strings.Contains(res.stdout, "e2e-1") {
		t.Errorf("audit -actor alice:\n%s", res.stdout)
	}
	res = as(apprToken, exitOK, "", "audit", "-jsonl", "-limit", "1")
	var events []string
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		var e struct {
			Event  string `json:"event"`
			SendID string `json:"send_id"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("-jsonl line %q: %v", line, err)
		}
		events = append(events, e.Event+":"+e.SendID)
	}
	// Pages of one entry each, all followed.
	if want := "[enqueued:e2e-1 approved:e2e-1 enqueued:e2e-3]"; fmt.Sprint(events) != want {
		t.Errorf("audit -jsonl: %v, want %s", events, want)
	}
	as(schedToken, exitAuth, "", "audit") // the scheduler does not read the audit trail
	as(apprToken, exitUsage, "", "audit", "-from", "last week")

	// Bulk approval against the real API: the review run prints e2e-3 in full and writes its
	// digest; e2e-4, enqueued after the review, is not approved by the approve run but listed.
	review := filepath.Join(t.TempDir(), "review.json")
	res = as(apprToken, exitOK, "", "approve", "-from-list", "-account", "acc-1", "-review", review)
	if !strings.Contains(res.stdout, "  | self\n") || !strings.Contains(res.stdout, own) {
		t.Errorf("review run:\n%s", res.stdout)
	}
	as(schedToken, exitOK, "", "enqueue", "-send-id", "e2e-4", "-op", "send", "-account", "acc-1", "-chat", "chat-1", "-text", "late")
	res = as(apprToken, exitOK, "", "approve", "-f", review)
	if !strings.Contains(res.stdout, "e2e-3") || !strings.Contains(res.stdout, "approved") || strings.Contains(res.stdout, "e2e-4") ||
		!strings.Contains(res.stderr, "1 send(s) pending approval were not approved") || !strings.Contains(res.stderr, "  e2e-4  ") {
		t.Errorf("approve -f review:\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	}
	res = as(apprToken, exitOK, "", "-o", "json", "show", "e2e-4")
	if !strings.Contains(res.stdout, `"state": "pending_approval"`) {
		t.Errorf("e2e-4 was approved without being reviewed:\n%s", res.stdout)
	}
}

// TestEndToEndForecast: sends deferred the way the worker defers them (a
// slot from a real ratelimit.Limiter on the same Redis, then ledger.Defer)
// show in "sendctl forecast" and "sendctl list -state waiting".
func TestEndToEndForecast(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	l := ledger.New(rdb, ledger.Options{})
	aq := asynq.NewClient(asynq.RedisClientOpt{Addr: srv.Addr()})
	t.Cleanup(func() { _ = aq.Close() })
	svc := approval.New(l, aq, approval.Options{Queue: "sends"})
	limits := config.Limits{MinInterval: time.Minute, HourlyCap: 60, DailyCap: 300, NewChatsHourlyCap: 1, NewChatsDailyCap: 20}
	rl := ratelimit.New(rdb, ratelimit.Options{LimitsFor: func(string) config.Limits { return limits }, Rand: func() float64 { return 0 }})
	now := time.Now().UTC().Truncate(time.Second)
	const token = "e2e-read-token-0123456789"
	h := adminapi.New(svc, adminapi.Options{
		Tokens:     []adminapi.Token{{Identity: "viewer", Roles: []string{adminapi.RoleAdmin}, Token: token}},
		Forecaster: rl,
		Now:        func() time.Time { return now },
	})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)

	// f-1 goes now (stays approved, as just before its call); f-2 and f-3
	// (a new chat) get later slots and wait for them.
	slots := map[string]ratelimit.Slot{}
	for _, req := range []tasks.SendRequest{
		{SendID: "f-1", Operation: tasks.OpSendMessage, AccountID: "acc-1", ChatID: "chat-1", Text: "one"},
		{SendID: "f-2", Operation: tasks.OpSendMessage, AccountID: "acc-1", ChatID: "chat-2", Text: "two"},
		{SendID: "f-3", Operation: tasks.OpCreateChat, AccountID: "acc-1", AttendeeIDs: []string{"33611111111@s.whatsapp.net"}, Text: "three"},
	} {
		rec, _, err := svc.Enqueue(ctx, req, "sequencer")
		if err != nil {
			t.Fatal(err)
		}
		if rec, err = svc.Approve(ctx, req.SendID, rec.Digest, "approver-1"); err != nil {
			t.Fatal(err)
		}
		s, err := rl.ReserveSlot(ctx, rec, now)
		if err != nil {
			t.Fatal(err)
		}
		slots[req.SendID] = s
		if !s.Go {
			if _, err := l.Defer(ctx, req.SendID, "", s.At, tasks.ReasonWaitRateLimit); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !slots["f-1"].Go || !slots["f-2"].At.Equal(now.Add(time.Minute)) || !slots["f-3"].At.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("slots = %+v", slots)
	}

	env := map[string]string{"SENDCTL_URL": ts.URL, "SENDCTL_TOKEN": token}
	res := runEnv(t, env, "", "forecast", "acc-1")
	if res.code != exitOK {
		t.Fatalf("forecast: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	for _, want := range []string{
		"Paused                no\n",
		"Next reply slot       in 3m (" + at(3*time.Minute) + "), held back by the minimum interval (1m)\n",
		"held back by the new-chats hourly cap (1)\n",
		"Sends, last hour      1 of 60 (hourly cap)\n",
		"Slots queued          2 (new chats 1)\n",
		"Sends                 approved 1, waiting 2, sending 0\n",
		"f-2      send    rate_limit  " + at(time.Minute) + "  in 1m  the account's rate limits put it at this time\n",
		"f-3      create  rate_limit  " + at(2*time.Minute) + "  in 2m  ",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("forecast lacks %q:\n%s", want, res.stdout)
		}
	}

	res = runEnv(t, env, "", "-o", "json", "forecast", "acc-1")
	var f wire.Forecast
	if err := json.Unmarshal([]byte(res.stdout), &f); err != nil || res.code != exitOK {
		t.Fatalf("forecast -o json: %v %d\n%s", err, res.code, res.stdout)
	}
	if f.AccountID != "acc-1" || !f.At.Equal(now) || !f.Rate.NextSlot.Equal(now.Add(3*time.Minute)) || f.Rate.NextSlotBinding != "min_interval" ||
		f.Rate.NextNewChatSlotBinding != "new_chats_hourly_cap" || len(f.Waiting) != 2 || f.Waiting[0].SendID != "f-2" || f.Counts["waiting"] != 2 {
		t.Errorf("forecast json = %s", res.stdout)
	}

	// The account paused: the forecast says so.
	if err := svc.Pause(ctx, "acc-1", "admin-1"); err != nil {
		t.Fatal(err)
	}
	res = runEnv(t, env, "", "forecast", "acc-1")
	if !strings.Contains(res.stdout, "Paused                YES: this account is paused\n") {
		t.Errorf("paused forecast:\n%s", res.stdout)
	}

	res = runEnv(t, env, "", "list", "-state", "waiting", "-oldest")
	lines := strings.Split(res.stdout, "\n")
	if res.code != exitOK || len(lines) < 3 || !strings.HasPrefix(lines[0], "SEND_ID  STATE    REASON      UNTIL ") ||
		!strings.HasPrefix(lines[1], "f-2      waiting  rate_limit  "+at(time.Minute)+"  ") ||
		!strings.HasPrefix(lines[2], "f-3      waiting  rate_limit  "+at(2*time.Minute)+"  ") {
		t.Errorf("list -state waiting:\n%s", res.stdout)
	}
}
