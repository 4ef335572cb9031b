package approval_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

func TestEnqueueConcurrentDuplicatesMakeOneRecord(t *testing.T) {
	e := newEnv(t)
	var created atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			rec, c, err := e.svc.Enqueue(e.ctx, send("s-1"), "sequencer")
			if err != nil {
				errs <- err
				return
			}
			if c {
				created.Add(1)
			}
			if rec.SendID != "s-1" || rec.Digest != digest("s-1") || rec.State != tasks.StatePendingApproval {
				errs <- fmt.Errorf("record %+v", rec)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if created.Load() != 1 {
		t.Fatalf("created %d times, want exactly 1", created.Load())
	}
	page, err := e.l.List(e.ctx, ledger.Query{State: tasks.StatePendingApproval})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("List = %d records, %v; want 1", len(page.Records), err)
	}

	// Same send_id, other content: a conflict naming the existing digest.
	other := send("s-1")
	other.Text = "something else"
	_, _, err = e.svc.Enqueue(e.ctx, other, "sequencer")
	var ce *ledger.ConflictError
	if !errors.As(err, &ce) || ce.ExistingDigest != digest("s-1") {
		t.Fatalf("Enqueue(other content) = %v, want *ConflictError", err)
	}
}

func TestEnqueueTakesRequesterFromCaller(t *testing.T) {
	e := newEnv(t)
	req := send("s-1")
	req.RequestedBy = "mallory" // whatever the body says, the caller's identity wins
	rec, _, err := e.svc.Enqueue(e.ctx, req, "sequencer")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Request.RequestedBy != "sequencer" {
		t.Fatalf("requested_by = %q, want the caller's identity", rec.Request.RequestedBy)
	}
	// mallory cannot use the forged requester to approve "someone else's" send: the
	// requester is sequencer, so sequencer may not approve.
	if _, err := e.svc.Approve(e.ctx, "s-1", rec.Digest, "sequencer"); !errors.Is(err, ledger.ErrSelfApproval) {
		t.Fatalf("self-approval = %v, want ErrSelfApproval", err)
	}
	if _, _, err := e.svc.Enqueue(e.ctx, send("s-2"), ""); !hasField(err, "requested_by") {
		t.Fatalf("Enqueue without identity = %v, want a requested_by field error", err)
	}
}

func hasField(err error, fields ...string) bool {
	var ve *tasks.ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	for _, f := range fields {
		if !slices.ContainsFunc(ve.Fields, func(fe tasks.FieldError) bool { return fe.Field == f }) {
			return false
		}
	}
	return true
}

func TestEnqueueValidationNamesEveryField(t *testing.T) {
	e := newEnv(t)
	req := send("bad id!")
	req.ChatID = ""
	req.Attachments = []tasks.Attachment{{URL: "ftp://x", Filename: "a.pdf", ContentType: "application/pdf", Size: 1, SHA256: "zz"}}
	_, _, err := e.svc.Enqueue(e.ctx, req, "sequencer")
	if !hasField(err, "send_id", "chat_id", "attachments[0].url", "attachments[0].sha256") {
		t.Fatalf("Enqueue = %v, want field errors for send_id, chat_id and the attachment", err)
	}
	if n, _ := e.l.Counts(e.ctx); n[tasks.StatePendingApproval] != 0 {
		t.Fatalf("an invalid send was stored: %v", n)
	}
}

func TestEnqueueEffectiveDeadline(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	cases := []struct {
		name     string
		deadline *time.Time
		notAfter *time.Time
		want     time.Time
	}{
		{"default", nil, nil, now.Add(approval.DefaultDeadline)},
		{"explicit", at(2 * time.Hour), nil, now.Add(2 * time.Hour)},
		{"window ends first", at(48 * time.Hour), at(3 * time.Hour), now.Add(3 * time.Hour)},
		{"window ends before the default", nil, at(time.Hour), now.Add(time.Hour)},
		{"window ends after", at(time.Hour), at(5 * time.Hour), now.Add(time.Hour)},
	}
	for i, c := range cases {
		req := send(fmt.Sprintf("d-%d", i))
		req.ApprovalDeadline = c.deadline
		if c.notAfter != nil {
			req.Window = &tasks.Window{NotAfter: c.notAfter}
		}
		rec, _, err := e.svc.Enqueue(e.ctx, req, "sequencer")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !rec.ApprovalDeadline.Equal(c.want) {
			t.Errorf("%s: deadline %v, want %v", c.name, rec.ApprovalDeadline, c.want)
		}
	}
}

func TestApproveChecksDigestAndRequester(t *testing.T) {
	e := newEnv(t)
	e.enqueue("s-1", "sequencer")
	wrong := send("s-1")
	wrong.Text = "not what was enqueued"
	if _, err := e.svc.Approve(e.ctx, "s-1", wrong.Digest(), "approver-1"); !errors.Is(err, ledger.ErrDigestMismatch) {
		t.Fatalf("wrong digest = %v, want ErrDigestMismatch", err)
	}
	if _, err := e.svc.Approve(e.ctx, "s-1", "nothex", "approver-1"); !hasField(err, "digest") {
		t.Fatalf("malformed digest = %v, want a digest field error", err)
	}
	if _, err := e.svc.Approve(e.ctx, "s-1", digest("s-1"), "sequencer"); !errors.Is(err, ledger.ErrSelfApproval) {
		t.Fatalf("self-approval = %v, want ErrSelfApproval", err)
	}
	if got := e.state("s-1"); got != tasks.StatePendingApproval {
		t.Fatalf("refused approvals changed the state to %s", got)
	}
	rec := e.approve("s-1")
	if rec.State != tasks.StateApproved || rec.Approval == nil || rec.Approval.By != "approver-1" {
		t.Fatalf("approved record = %+v", rec)
	}
	// A second approval is refused: the send is no longer pending.
	if _, err := e.svc.Approve(e.ctx, "s-1", digest("s-1"), "approver-2"); !errors.Is(err, ledger.ErrNotPending) {
		t.Fatalf("second approval = %v, want ErrNotPending", err)
	}
	if _, err := e.svc.Approve(e.ctx, "missing", digest("missing"), "approver-1"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("approve unknown = %v, want ErrNotFound", err)
	}
}

func TestSweepExpiresAndWritesResult(t *testing.T) {
	e := newEnv(t)
	req := send("s-1")
	deadline := e.clock.Now().Add(time.Hour)
	req.ApprovalDeadline = &deadline
	if _, _, err := e.svc.Enqueue(e.ctx, req, "sequencer"); err != nil {
		t.Fatal(err)
	}
	e.enqueue("s-2", "sequencer") // default deadline: 24h

	if n, err := e.svc.SweepOnce(e.ctx); err != nil || n != 0 {
		t.Fatalf("SweepOnce before the deadline = %d, %v", n, err)
	}
	e.clock.Advance(time.Hour + time.Second)
	if n, err := e.svc.SweepOnce(e.ctx); err != nil || n != 1 {
		t.Fatalf("SweepOnce after the deadline = %d, %v; want 1", n, err)
	}
	rec, err := e.l.Get(e.ctx, "s-1")
	if err != nil || rec.State != tasks.StateExpired || rec.Reason != tasks.ReasonApprovalExpired || rec.Result == nil {
		t.Fatalf("expired record = %+v, %v", rec, err)
	}
	if got := e.state("s-2"); got != tasks.StatePendingApproval {
		t.Fatalf("s-2 = %s, want still pending", got)
	}
	entries, err := e.rdb.XRange(e.ctx, testResults, "-", "+").Result()
	if err != nil || len(entries) != 1 || entries[0].Values["send_id"] != "s-1" || entries[0].Values["state"] != string(tasks.StateExpired) {
		t.Fatalf("results stream = %+v, %v; want one expired entry for s-1", entries, err)
	}
	// Approving after the deadline is refused.
	if _, err := e.svc.Approve(e.ctx, "s-1", digest("s-1"), "approver-1"); !errors.Is(err, ledger.ErrNotPending) {
		t.Fatalf("approve expired = %v, want ErrNotPending", err)
	}
}

func TestApprovalPastDeadlineExpiresWithoutSweeper(t *testing.T) {
	e := newEnv(t)
	req := send("s-1")
	deadline := e.clock.Now().Add(time.Minute)
	req.ApprovalDeadline = &deadline
	if _, _, err := e.svc.Enqueue(e.ctx, req, "sequencer"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute)
	_, err := e.svc.Approve(e.ctx, "s-1", req.Digest(), "approver-1")
	var se *ledger.StateError
	if !errors.As(err, &se) || se.Current != tasks.StateExpired {
		t.Fatalf("late approval = %v, want StateError with state expired", err)
	}
	if e.outbox() != 0 {
		t.Fatal("a late approval reached the outbox")
	}
}

func TestReleaseEnqueuesOneTaskWithIdentifiersOnly(t *testing.T) {
	e := newEnv(t)
	e.enqueue("s-1", "sequencer")
	e.approve("s-1")
	if n, err := e.svc.ReleaseOnce(e.ctx); err != nil || n != 1 {
		t.Fatalf("ReleaseOnce = %d, %v; want 1", n, err)
	}
	info, err := e.insp.GetTaskInfo(testQueue, "s-1/r1")
	if err != nil {
		t.Fatalf("task s-1/r1: %v", err)
	}
	if info.Type != tasks.OpSendMessage.TaskType() || info.State != asynq.TaskStatePending || info.Retention != approval.DefaultTaskRetention {
		t.Fatalf("task = %+v", info)
	}
	var p tasks.Payload
	dec := json.NewDecoder(bytesReader(info.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || p != (tasks.Payload{SendID: "s-1", Digest: digest("s-1"), Gen: 1, AccountID: "acc-a"}) {
		t.Fatalf("payload %s = %+v, %v", info.Payload, p, err)
	}
	if e.outbox() != 0 {
		t.Fatal("outbox not emptied")
	}
	if n, err := e.svc.ReleaseOnce(e.ctx); err != nil || n != 0 {
		t.Fatalf("second ReleaseOnce = %d, %v; want 0", n, err)
	}
	if got := len(e.tasksInQueue()); got != 1 {
		t.Fatalf("%d tasks, want 1", got)
	}
}

// A crash after the approval was recorded and before the task was enqueued
// loses nothing: the next process (or replica) releases it, once.
func TestCrashBeforeReleaseLosesNothing(t *testing.T) {
	e := newEnv(t)
	e.enqueue("s-1", "sequencer")
	e.approve("s-1") // ...and the process dies before its releaser runs.
	if got := e.tasksInQueue(); len(got) != 0 {
		t.Fatalf("tasks before release: %d", len(got))
	}

	restarted := e.newService()
	if n, err := restarted.ReleaseOnce(e.ctx); err != nil || n != 1 {
		t.Fatalf("ReleaseOnce after restart = %d, %v; want 1", n, err)
	}
	if _, err := e.insp.GetTaskInfo(testQueue, "s-1/r1"); err != nil {
		t.Fatalf("task s-1/r1 after restart: %v", err)
	}
	for range 2 {
		if n, err := restarted.ReleaseOnce(e.ctx); err != nil || n != 0 {
			t.Fatalf("ReleaseOnce again = %d, %v; want 0", n, err)
		}
	}
	if got := len(e.tasksInQueue()); got != 1 {
		t.Fatalf("%d tasks, want exactly 1", got)
	}
}

// A crash after asynq took the task and before the outbox entry was removed:
// the next release finds the task id taken and makes no second task.
func TestCrashAfterEnqueueBeforeMarkReleasedMakesNoDuplicate(t *testing.T) {
	e := newEnv(t)
	e.enqueue("s-1", "sequencer")
	e.approve("s-1")
	// What the crashed releaser had done: the task is in asynq, the outbox entry still there.
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: e.srv.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	payload, _ := json.Marshal(tasks.Payload{SendID: "s-1", Digest: digest("s-1"), Gen: 1})
	if _, err := client.Enqueue(asynq.NewTask(tasks.OpSendMessage.TaskType(), payload), asynq.TaskID("s-1/r1"), asynq.Queue(testQueue)); err != nil {
		t.Fatal(err)
	}
	if e.outbox() != 1 {
		t.Fatal("outbox entry missing")
	}
	if n, err := e.newService().ReleaseOnce(e.ctx); err != nil || n != 1 {
		t.Fatalf("ReleaseOnce = %d, %v; want 1 (marked released)", n, err)
	}
	if e.outbox() != 0 {
		t.Fatal("outbox entry not removed")
	}
	if got := len(e.tasksInQueue()); got != 1 {
		t.Fatalf("%d tasks, want exactly 1", got)
	}
}

func TestConcurrentReleasersMakeOneTaskPerSend(t *testing.T) {
	e := newEnv(t)
	const n = 200
	for i := range n {
		id := fmt.Sprintf("s-%d", i)
		e.enqueue(id, "sequencer")
		e.approve(id)
	}
	replicas := []*approval.Service{e.svc, e.newService(), e.newService()}
	var wg sync.WaitGroup
	for _, s := range replicas {
		wg.Go(func() {
			for range 3 {
				if _, err := s.ReleaseOnce(e.ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got := e.tasksInQueue()
	if len(got) != n {
		t.Fatalf("%d tasks, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for _, ti := range got {
		if seen[ti.ID] {
			t.Fatalf("task %s twice", ti.ID)
		}
		seen[ti.ID] = true
	}
	if e.outbox() != 0 {
		t.Fatalf("outbox = %d, want 0", e.outbox())
	}
}

// Reject and cancel after approval stop the send: before release the outbox
// no longer releases it; after release the task that exists finds a final
// record and does nothing.
func TestRejectOrCancelAfterApprovalStopsTheSend(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"rej", "can", "late"} {
		e.enqueue(id, "sequencer")
		e.approve(id)
	}
	if rec, err := e.svc.Reject(e.ctx, "rej", "approver-2", "wrong contact"); err != nil || rec.State != tasks.StateRejected {
		t.Fatalf("Reject = %+v, %v", rec, err)
	}
	if rec, err := e.svc.Cancel(e.ctx, "can", "sequencer", ""); err != nil || rec.State != tasks.StateCanceled {
		t.Fatalf("Cancel = %+v, %v", rec, err)
	}
	if n, err := e.svc.ReleaseOnce(e.ctx); err != nil || n != 1 {
		t.Fatalf("ReleaseOnce = %d, %v; want 1 (only 'late')", n, err)
	}
	ids := []string{}
	for _, ti := range e.tasksInQueue() {
		ids = append(ids, ti.ID)
	}
	if !slices.Equal(ids, []string{"late/r1"}) {
		t.Fatalf("tasks = %v, want only late/r1", ids)
	}

	// Released, then canceled before the worker ran: the task finds a final record.
	if _, err := e.svc.Cancel(e.ctx, "late", "admin-1", "campaign stopped"); err != nil {
		t.Fatal(err)
	}
	res, err := e.l.BeginAttempt(e.ctx, ledger.BeginRequest{SendID: "late", Digest: digest("late"), Gen: 1, Token: "tok", Lease: time.Minute})
	if err != nil || res.Outcome != ledger.BeginFinal {
		t.Fatalf("BeginAttempt after cancel = %+v, %v; want BeginFinal", res, err)
	}
	// And a decision on a final send says so.
	if _, err := e.svc.Reject(e.ctx, "late", "approver-2", "x"); !errors.Is(err, ledger.ErrFinal) {
		t.Fatalf("reject canceled = %v, want ErrFinal", err)
	}
}

func TestBulkDecisionsArePerItem(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"a", "b", "c"} {
		e.enqueue(id, "sequencer")
	}
	other := send("b")
	other.Text = "changed after review"
	otherDigest := other.Digest()
	res := e.svc.ApproveMany(e.ctx, []approval.ApproveItem{
		{SendID: "a", Digest: digest("a")},
		{SendID: "b", Digest: otherDigest}, // not what b says
		{SendID: "zz", Digest: digest("zz")},
	}, "approver-1")
	if res[0].Err != nil || res[0].Record.State != tasks.StateApproved ||
		!errors.Is(res[1].Err, ledger.ErrDigestMismatch) || !errors.Is(res[2].Err, ledger.ErrNotFound) {
		t.Fatalf("ApproveMany = %+v", res)
	}
	rej := e.svc.RejectMany(e.ctx, []string{"b", "a", "nope"}, "approver-1", "not now")
	if rej[0].Err != nil || rej[0].Record.State != tasks.StateRejected || rej[1].Err != nil || !errors.Is(rej[2].Err, ledger.ErrNotFound) {
		t.Fatalf("RejectMany = %+v", rej)
	}
	enq := e.svc.EnqueueMany(e.ctx, []tasks.SendRequest{send("c"), send("d"), {SendID: "e"}}, "sequencer")
	if enq[0].Err != nil || enq[0].Created || enq[1].Err != nil || !enq[1].Created || !hasField(enq[2].Err, "operation") {
		t.Fatalf("EnqueueMany = %+v", enq)
	}
}

func TestPauseAndResume(t *testing.T) {
	e := newEnv(t)
	if err := e.svc.Pause(e.ctx, "", "admin-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Pause(e.ctx, "acc-b", "admin-1"); err != nil {
		t.Fatal(err)
	}
	global, accounts, err := e.l.PauseState(e.ctx)
	if err != nil || !global || !slices.Equal(accounts, []string{"acc-b"}) {
		t.Fatalf("PauseState = %v %v %v", global, accounts, err)
	}
	if err := e.svc.Resume(e.ctx, "", "admin-1"); err != nil {
		t.Fatal(err)
	}
	if global, _, _ := e.l.PauseState(e.ctx); global {
		t.Fatal("still paused")
	}
	if err := e.svc.Pause(e.ctx, "bad account", "admin-1"); !hasField(err, "account_id") {
		t.Fatalf("Pause(bad id) = %v", err)
	}
}

func TestRunReleasesAndStops(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := contextWithCancel(t)
	done := make(chan error, 1)
	go func() { done <- e.svc.Run(ctx) }()

	e.enqueue("s-1", "sequencer")
	e.approve("s-1") // wakes the releaser at once
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := e.insp.GetTaskInfo(testQueue, "s-1/r1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not release the approved send")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// A pause holds a send even after it was released: the task finds the switch
// and parks the send; resume puts it back in the outbox under a new
// generation, so the release makes a new task and the old one is stale.
func TestPauseHoldsReleasedSendAndResumeReleasesANewGeneration(t *testing.T) {
	e := newEnv(t)
	e.enqueue("s-1", "sequencer")
	e.approve("s-1")
	if n, err := e.svc.ReleaseOnce(e.ctx); err != nil || n != 1 {
		t.Fatalf("ReleaseOnce = %d, %v", n, err)
	}
	if err := e.svc.Pause(e.ctx, "acc-a", "admin-1"); err != nil {
		t.Fatal(err)
	}
	begin := func(gen int64) ledger.BeginOutcome {
		t.Helper()
		res, err := e.l.BeginAttempt(e.ctx, ledger.BeginRequest{SendID: "s-1", Digest: digest("s-1"), Gen: gen, Token: fmt.Sprint("tok-", gen), Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return res.Outcome
	}
	if got := begin(1); got != ledger.BeginHeld {
		t.Fatalf("BeginAttempt while paused = %v, want BeginHeld", got)
	}
	if n, _ := e.svc.ReleaseOnce(e.ctx); n != 0 {
		t.Fatalf("a held send was released (%d)", n)
	}
	if err := e.svc.Resume(e.ctx, "acc-a", "admin-1"); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.ReleaseOnce(e.ctx); err != nil || n != 1 {
		t.Fatalf("ReleaseOnce after resume = %d, %v; want 1", n, err)
	}
	if _, err := e.insp.GetTaskInfo(testQueue, "s-1/r2"); err != nil {
		t.Fatalf("task s-1/r2: %v", err)
	}
	if got := begin(1); got != ledger.BeginStale {
		t.Fatalf("old task after resume = %v, want BeginStale", got)
	}
	if got := begin(2); got != ledger.BeginOK {
		t.Fatalf("new task after resume = %v, want BeginOK", got)
	}
}

// waitReleased waits until the task of send id (generation 1) is in asynq.
func (e *env) waitReleased(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := e.insp.GetTaskInfo(testQueue, id+"/r1"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not released", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Start runs the loops in the background, refuses a second Start, and Stop
// ends them (nothing is released while stopped) and allows a new Start.
func TestStartReleasesStopEndsAndRestarts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Start(ctx); !errors.Is(err, approval.ErrStarted) {
		t.Fatalf("second Start = %v, want ErrStarted", err)
	}
	e.enqueue("s-1", "sequencer")
	e.approve("s-1")
	e.waitReleased(t, "s-1")

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.svc.Stop(stopCtx); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if err := e.svc.Stop(stopCtx); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
	e.enqueue("s-2", "sequencer")
	e.approve("s-2")
	time.Sleep(3 * approval.DefaultReleaseInterval)
	if _, err := e.insp.GetTaskInfo(testQueue, "s-2/r1"); err == nil {
		t.Fatal("a send was released after Stop")
	}
	if err := e.svc.Start(ctx); err != nil {
		t.Fatalf("Start after Stop = %v", err)
	}
	e.waitReleased(t, "s-2")
	if err := e.svc.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
}
