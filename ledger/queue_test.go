package ledger

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// TestQueueOrderPagingAndFilters: oldest deadline first (ties by send_id),
// every pending send exactly once across pages, also when sends are decided
// while paging (the cursor's own send included), and a filter bounded by ScanMax.
func TestQueueOrderPagingAndFilters(t *testing.T) {
	e := newEnv(t)
	var want []string
	// 450 sends, deadlines in 150 distinct ms (ties of 3), created in an order
	// unrelated to the deadline; account b every third.
	for i := range 450 {
		id := fmt.Sprintf("s-%03d", (i*7)%450)
		req := request(id, "a")
		if (i*7)%450%3 == 0 {
			req.AccountID = "b"
		}
		dl := e.clock.Now().Add(time.Hour + time.Duration(((i*7)%450)/3)*time.Millisecond)
		if _, _, err := e.l.Create(e.ctx, req, req.Digest(), dl); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 450 {
		want = append(want, fmt.Sprintf("s-%03d", i))
	}

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		p, err := e.l.Queue(e.ctx, QueueQuery{After: after, Limit: 40})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			got = append(got, r.SendID)
		}
		if pages == 2 {
			// Decide the page's last send and the next one: paging goes on.
			last := p.Records[len(p.Records)-1].SendID
			if _, err := e.l.Reject(e.ctx, last, "x", ""); err != nil {
				t.Fatal(err)
			}
			want = slices.DeleteFunc(want, func(s string) bool { return s == "s-120" })
			if _, err := e.l.Reject(e.ctx, "s-120", "x", ""); err != nil {
				t.Fatal(err)
			}
		}
		if p.Next == "" {
			break
		}
		after = p.Next
		if pages > 20 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("queue order:\n got %v\nwant %v", got, want)
	}

	// A filter: only account b, 10 a page, at most 25 looked at per page.
	p, err := e.l.Queue(e.ctx, QueueQuery{Limit: 10, ScanMax: 25, Keep: func(r *tasks.Record) bool { return r.Request.AccountID == "b" }})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 9 || p.Scanned != 25 || p.Next == "" {
		t.Fatalf("filtered page: %d records, scanned %d, next %q", len(p.Records), p.Scanned, p.Next)
	}
	for _, r := range p.Records {
		if r.Request.AccountID != "b" {
			t.Fatalf("filter kept %s of %s", r.SendID, r.Request.AccountID)
		}
	}
	// The send after one record (a send page's "next").
	rec, _ := e.l.Get(e.ctx, "s-005")
	p, _ = e.l.Queue(e.ctx, QueueQuery{After: QueueCursorOf(rec), Limit: 1})
	if len(p.Records) != 1 || p.Records[0].SendID != "s-006" {
		t.Fatalf("next after s-005 = %+v", p.Records)
	}
	if n, err := e.l.PendingCount(e.ctx, ""); err != nil || n != 448 {
		t.Fatalf("pending = %d, %v", n, err)
	}
	if n, err := e.l.PendingCount(e.ctx, "b"); err != nil || n != 150-1 { // s-120 (b) was rejected
		t.Fatalf("pending of b = %d, %v", n, err)
	}
	for _, bad := range []string{"x", encodeCursor(5), "cTEuNQ"} {
		if _, err := e.l.Queue(e.ctx, QueueQuery{After: bad}); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

func FuzzQueueCursor(f *testing.F) {
	f.Add(encodeQueueCursor(1700000000000, "s-1"))
	f.Add("cTEuMS5h")
	f.Add("")
	f.Fuzz(func(t *testing.T, c string) {
		ms, id, err := decodeQueueCursor(c)
		if err == nil && encodeQueueCursor(ms, id) != c {
			t.Fatalf("%q decodes to (%d, %q), which encodes otherwise", c, ms, id)
		}
	})
}
