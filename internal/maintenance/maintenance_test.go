package maintenance_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sendworker/sendworker/internal/maintenance"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// clock is a settable clock shared by the ledger and the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startedAttempt makes a send that is approved, released and in its sending call with a
// lease of lease, as an execution killed during its call leaves it.
func startedAttempt(t *testing.T, l *ledger.Ledger, clk *clock, id string, lease time.Duration) {
	t.Helper()
	ctx := context.Background()
	req := &tasks.SendRequest{SendID: id, Operation: tasks.OpSendMessage, AccountID: "acc-1", ChatID: "chat-1", Text: "hello"}
	rec, _, err := l.Create(ctx, req, req.Digest(), clk.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Approve(ctx, id, rec.Digest, "approver", ""); err != nil {
		t.Fatal(err)
	}
	rs, err := l.DueForRelease(ctx, 10)
	if err != nil || len(rs) != 1 {
		t.Fatalf("due for release: %v %v", rs, err)
	}
	if err := l.MarkAllReleased(ctx, rs); err != nil {
		t.Fatal(err)
	}
	res, err := l.BeginAttempt(ctx, ledger.BeginRequest{SendID: id, Digest: rec.Digest, Gen: rs[0].Gen, Token: "tok-" + id, Lease: lease})
	if err != nil || res.Outcome != ledger.BeginOK {
		t.Fatalf("begin attempt: %v %v", res.Outcome, err)
	}
}

func TestPass(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	clk := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	l := ledger.New(rdb, ledger.Options{Now: clk.Now, LeaseClock: ledger.LeaseClockCaller})
	startedAttempt(t, l, clk, "s-crashed", 30*time.Second)

	svc := maintenance.New(l, maintenance.Options{RecoveryGrace: time.Hour, TrimEvery: time.Minute, Now: clk.Now})
	ctx := context.Background()

	steps := []struct {
		name        string
		advance     time.Duration
		wantCrashed []string
		wantTrimmed bool
	}{
		{"lease still running", 10 * time.Second, nil, false},
		{"lease ended, within the grace", 22 * time.Second, nil, false},
		{"lease ended beyond the grace: re-released once", 5 * time.Second, []string{"s-crashed"}, false},
		{"already re-released: not again", time.Second, nil, false},
		{"a minute since the service began: trim", 30 * time.Second, nil, true},
		{"trim not due again yet", 10 * time.Second, nil, false},
	}
	for _, st := range steps {
		clk.Add(st.advance)
		r := svc.Pass(ctx)
		if len(r.Errs) > 0 {
			t.Fatalf("%s: errors %v", st.name, r.Errs)
		}
		if len(r.CrashedReleased) != len(st.wantCrashed) || (len(st.wantCrashed) > 0 && r.CrashedReleased[0] != st.wantCrashed[0]) {
			t.Errorf("%s: crashed re-released %v, want %v", st.name, r.CrashedReleased, st.wantCrashed)
		}
		if r.Trimmed != st.wantTrimmed {
			t.Errorf("%s: trimmed %v, want %v", st.name, r.Trimmed, st.wantTrimmed)
		}
		if len(r.StuckReleased) != 0 || r.ResumesFinished != 0 {
			t.Errorf("%s: unexpected repairs %+v", st.name, r)
		}
	}
	rec, err := l.Get(ctx, "s-crashed")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != tasks.StateSending {
		t.Errorf("re-released send is %s, want still sending (reconciled by its next execution)", rec.State)
	}
}

func TestPassReportsRedisErrors(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	l := ledger.New(rdb, ledger.Options{})
	svc := maintenance.New(l, maintenance.Options{RecoveryGrace: time.Minute, TrimEvery: time.Nanosecond})
	_ = rdb.Close() // every call now fails
	r := svc.Pass(context.Background())
	if len(r.Errs) != 4 {
		t.Errorf("got %d errors (%v), want one per repair (4)", len(r.Errs), r.Errs)
	}
}

func TestStartStop(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	l := ledger.New(rdb, ledger.Options{})
	svc := maintenance.New(l, maintenance.Options{RecoveryGrace: time.Minute})
	ctx := context.Background()
	if err := svc.Stop(ctx); err != nil {
		t.Errorf("stop before start: %v", err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != maintenance.ErrStarted {
		t.Errorf("second start: %v, want ErrStarted", err)
	}
	if err := svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Errorf("start after stop: %v", err)
	}
	if err := svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
