package cli

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/ledger"
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
	want := "sendctl: approve e2e-1: digest mismatch: the send changed since you looked (current digest " + digest[:12] + "…)"
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
}
