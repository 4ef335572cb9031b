package ledger

import (
	"fmt"
	"testing"
	"time"
)

// TestAudit: the audit stream is listed oldest first, filtered by actor, send, account and time,
// and paged by cursor without a gap or a repeat.
func TestAudit(t *testing.T) {
	e := newEnv(t)
	t0 := e.clock.Now()
	e.approved("s1", "acc-1") // enqueued by scheduler, approved by approver
	e.clock.Advance(time.Minute)
	e.create("s2", "acc-2")
	if _, err := e.l.Reject(e.ctx, "s2", "bob", "not now"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if err := e.l.SetPaused(e.ctx, "acc-1", true, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := e.l.AddOptOut(e.ctx, "contact-9", "ops"); err != nil {
		t.Fatal(err)
	}

	all, next, err := e.l.Audit(e.ctx, AuditQuery{})
	if err != nil || next != "" {
		t.Fatalf("audit: %v, next %q", err, next)
	}
	var got []string
	for _, a := range all {
		got = append(got, a.Event+":"+a.By)
	}
	if want := "[enqueued:scheduler approved:approver enqueued:scheduler rejected:bob paused:ops optout_added:ops]"; fmt.Sprint(got) != want {
		t.Fatalf("entries %v, want %s", got, want)
	}
	if all[3].Note != "not now" || all[3].SendID != "s2" || all[3].AccountID != "acc-2" || all[1].Digest == "" || !all[0].At.Equal(t0) {
		t.Fatalf("entry fields: %+v / %+v", all[3], all[0])
	}

	for _, tc := range []struct {
		name string
		q    AuditQuery
		n    int
	}{
		{"actor", AuditQuery{Actor: "ops"}, 2},
		{"send", AuditQuery{SendID: "s1"}, 2},
		{"account", AuditQuery{AccountID: "acc-1"}, 3}, // s1 enqueued, approved, acc-1 paused
		{"from", AuditQuery{From: t0.Add(time.Minute)}, 4},
		{"to", AuditQuery{To: t0.Add(30 * time.Second)}, 2},
		{"range and actor", AuditQuery{From: t0.Add(time.Minute), To: t0.Add(time.Minute), Actor: "bob"}, 1},
	} {
		got, _, err := e.l.Audit(e.ctx, tc.q)
		if err != nil || len(got) != tc.n {
			t.Errorf("%s: %d entries (%v), want %d", tc.name, len(got), err, tc.n)
		}
	}

	// Pages of 4: every entry once, in order.
	var paged []string
	cursor := ""
	for range 10 {
		page, next, err := e.l.Audit(e.ctx, AuditQuery{Limit: 4, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			paged = append(paged, a.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	var ids []string
	for _, a := range all {
		ids = append(ids, a.ID)
	}
	if fmt.Sprint(paged) != fmt.Sprint(ids) {
		t.Fatalf("paged %v, want %v", paged, ids)
	}

	for _, bad := range []AuditQuery{{Cursor: "nope"}, {Limit: 5000}, {Limit: -1}} {
		if _, _, err := e.l.Audit(e.ctx, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
