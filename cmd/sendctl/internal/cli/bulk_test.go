package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sendworker/sendworker/tasks"
)

// pagedSends answers GET /v1/sends with three pages chained by cursors.
func pagedSends(t *testing.T) func(call) reply {
	pages := map[string]struct {
		ids  []string
		next string
	}{
		"":   {[]string{"s-1", "s-2"}, "c2"},
		"c2": {[]string{"s-3", "s-4"}, "c3"},
		"c3": {[]string{"s-5"}, ""},
	}
	return func(c call) reply {
		q, _ := url.ParseQuery(c.Query)
		p, ok := pages[q.Get("cursor")]
		if c.Method != http.MethodGet || c.Path != "/v1/sends" || !ok {
			return reply{404, `{"error":{"code":"not_found","message":"no such page"}}`}
		}
		var recs []tasks.Record
		for _, id := range p.ids {
			recs = append(recs, sampleRecord(id, tasks.StatePendingApproval))
		}
		return reply{200, mustJSON(t, map[string]any{"sends": recs, "next_cursor": p.next})}
	}
}

func TestListAllFollowsCursors(t *testing.T) {
	api := newFakeAPI(t, pagedSends(t))
	res := run(t, api.srv.URL, "", "list", "-all", "-state", "pending_approval", "-limit", "2")
	if res.code != exitOK {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	var cursors []string
	for _, c := range api.Calls() {
		q, _ := url.ParseQuery(c.Query)
		if q.Get("state") != "pending_approval" || q.Get("limit") != "2" {
			t.Errorf("page query lost its filters: %s", c.Query)
		}
		cursors = append(cursors, q.Get("cursor"))
	}
	if fmt.Sprint(cursors) != "[ c2 c3]" {
		t.Errorf("cursors %q, want first page then c2, c3", cursors)
	}
	for _, id := range []string{"s-1", "s-2", "s-3", "s-4", "s-5"} {
		if !strings.Contains(res.stdout, id+" ") {
			t.Errorf("output lacks %s:\n%s", id, res.stdout)
		}
	}
	if strings.Contains(res.stderr, "more sends") {
		t.Errorf("-all still says there is more: %s", res.stderr)
	}

	res = run(t, api.srv.URL, "", "-o", "json", "list", "-all")
	var all struct {
		Sends      []tasks.Record `json:"sends"`
		NextCursor string         `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &all); err != nil || len(all.Sends) != 5 || all.NextCursor != "" {
		t.Errorf("json -all: %v, %d sends, next %q", err, len(all.Sends), all.NextCursor)
	}
}

func TestListOnePageSaysThereIsMore(t *testing.T) {
	api := newFakeAPI(t, pagedSends(t))
	res := run(t, api.srv.URL, "", "list")
	if res.code != exitOK || len(api.Calls()) != 1 || !strings.Contains(res.stderr, "more sends: add -cursor c2 (or -all)") {
		t.Errorf("exit %d, %d calls, stderr %q", res.code, len(api.Calls()), res.stderr)
	}
	if strings.Contains(res.stdout, "s-3") {
		t.Errorf("followed a cursor without -all")
	}
}

func TestListStopsOnRepeatedCursor(t *testing.T) {
	api := newFakeAPI(t, always(200, `{"sends":[],"next_cursor":"same"}`))
	res := run(t, api.srv.URL, "", "list", "-all")
	if res.code != exitServer || !strings.Contains(res.stderr, "repeated a cursor") || len(api.Calls()) != 2 {
		t.Errorf("exit %d, %d calls, stderr %q", res.code, len(api.Calls()), res.stderr)
	}
}

func TestBulkEnqueuePartialFailure(t *testing.T) {
	rec := sampleRecord("s-1", tasks.StatePendingApproval)
	answer := `{"results":[
		{"send_id":"s-1","status":201,"record":` + mustJSON(t, rec) + `},
		{"send_id":"s-2","status":200,"record":` + mustJSON(t, rec) + `},
		{"send_id":"s-3","status":409,"error":{"code":"conflict","message":"send s-3 exists with other content"}},
		{"send_id":"s-4","status":400,"error":{"code":"invalid_request","message":"invalid send request","fields":[{"field":"text","code":"too_long","message":"at most 4096 characters"}]}}]}`
	var sends []tasks.SendRequest
	for i := 1; i <= 4; i++ {
		sends = append(sends, sampleRequest(fmt.Sprintf("s-%d", i)))
	}
	for _, output := range []string{"table", "json"} {
		api := newFakeAPI(t, always(200, answer))
		res := run(t, api.srv.URL, mustJSON(t, sends), "-o", output, "enqueue", "-f", "-")
		if res.code != exitPartial {
			t.Fatalf("%s: exit %d, want 7; stderr %s", output, res.code, res.stderr)
		}
		if !strings.Contains(res.stderr, "sendctl: enqueue: 2 of 4 item(s) failed") {
			t.Errorf("stderr %q", res.stderr)
		}
		if c := api.Calls(); len(c) != 1 || c[0].Path != "/v1/sends:batch" {
			t.Fatalf("calls %+v", c)
		}
		if output == "json" {
			if !jsonEqual(t, res.stdout, answer) {
				t.Errorf("json output is not the API's results:\n%s", res.stdout)
			}
			continue
		}
		for _, want := range []string{"enqueued", "unchanged", "failed (409)", "conflict; send s-3 exists with other content",
			"failed (400)", "text: at most 4096 characters"} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("table lacks %q:\n%s", want, res.stdout)
			}
		}
	}
}

func TestBulkEnqueueSplitsBigBatches(t *testing.T) {
	var (
		mu    sync.Mutex
		sizes []int
	)
	api := newFakeAPI(t, func(c call) reply {
		var body struct {
			Sends []tasks.SendRequest `json:"sends"`
		}
		if err := json.Unmarshal([]byte(c.Body), &body); err != nil {
			return reply{400, `{"error":{"code":"invalid_request","message":"bad"}}`}
		}
		mu.Lock()
		sizes = append(sizes, len(body.Sends))
		mu.Unlock()
		var results []map[string]any
		for _, s := range body.Sends {
			results = append(results, map[string]any{"send_id": s.SendID, "status": 201})
		}
		return reply{200, mustJSON(t, map[string]any{"results": results})}
	})
	var sends []tasks.SendRequest
	for i := range 1201 {
		sends = append(sends, sampleRequest(fmt.Sprintf("s-%d", i)))
	}
	res := run(t, api.srv.URL, mustJSON(t, map[string]any{"sends": sends}), "-o", "json", "enqueue", "-f", "-")
	mu.Lock()
	defer mu.Unlock()
	if res.code != exitOK || fmt.Sprint(sizes) != "[500 500 201]" {
		t.Fatalf("exit %d, chunk sizes %v; stderr %s", res.code, sizes, res.stderr)
	}
	var out struct {
		Results []itemResult `json:"results"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || len(out.Results) != 1201 {
		t.Errorf("merged results: %v, %d", err, len(out.Results))
	}
}

func TestRejectBulkPartialFailure(t *testing.T) {
	api := newFakeAPI(t, always(200, `{"results":[{"send_id":"s-1","status":200},{"send_id":"s-2","status":404,"error":{"code":"not_found","message":"no send s-2"}}]}`))
	res := run(t, api.srv.URL, "", "reject", "s-1", "s-2", "-reason", "stale")
	if res.code != exitPartial || !strings.Contains(res.stdout, "no send s-2") || !strings.Contains(res.stderr, "1 of 2 item(s) failed") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", res.code, res.stdout, res.stderr)
	}
}

// TestApproveReviewedOnly is the two-run bulk approval: the review run prints
// every pending send in full and writes their digests; the approve run
// approves exactly those. A send enqueued between the runs is not approved
// but listed, and a send that changed is refused by the API and reported.
func TestApproveReviewedOnly(t *testing.T) {
	var mu sync.Mutex
	pending := []string{"s-1", "s-2", "s-3"}
	changed := false
	var approved []approveItem
	api := newFakeAPI(t, func(c call) reply {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case c.Method == http.MethodGet && c.Path == "/v1/sends":
			q, _ := url.ParseQuery(c.Query)
			if q.Get("state") != "pending_approval" || q.Get("account_id") != "acc-1" {
				t.Errorf("listing query %s", c.Query)
			}
			var recs []tasks.Record
			for _, id := range pending {
				r := sampleRecord(id, tasks.StatePendingApproval)
				if id == "s-2" && changed {
					r.Request.Text = "another text"
					r.Digest = r.Request.Digest()
				}
				recs = append(recs, r)
			}
			return reply{200, mustJSON(t, map[string]any{"sends": recs})}
		case c.Method == http.MethodPost && c.Path == "/v1/sends:approve":
			var body struct {
				Items []approveItem `json:"items"`
			}
			if err := json.Unmarshal([]byte(c.Body), &body); err != nil {
				t.Fatal(err)
			}
			var results []map[string]any
			for _, it := range body.Items {
				if it.SendID == "s-2" { // changed since the review: the API refuses its digest
					results = append(results, map[string]any{"send_id": it.SendID, "status": 409,
						"error": map[string]string{"code": "digest_mismatch", "message": "approve: digest is not the send's current digest"}})
					continue
				}
				approved = append(approved, it)
				results = append(results, map[string]any{"send_id": it.SendID, "status": 200})
			}
			return reply{200, mustJSON(t, map[string]any{"results": results})}
		}
		return reply{404, `{"error":{"code":"not_found","message":"no route"}}`}
	})
	file := filepath.Join(t.TempDir(), "review.json")

	res := run(t, api.srv.URL, "", "approve", "-from-list", "-account", "acc-1", "-review", file)
	if res.code != exitOK {
		t.Fatalf("review run: exit %d: %s", res.code, res.stderr)
	}
	for _, c := range api.Calls() {
		if c.Method != http.MethodGet {
			t.Fatalf("the review run approved: %s %s", c.Method, c.Path)
		}
	}
	full := sampleRequest("s-1").Text
	for i, id := range []string{"s-1", "s-2", "s-3"} {
		if !strings.Contains(res.stdout, fmt.Sprintf("======== %d of 3: %s ========", i+1, id)) {
			t.Errorf("review does not show %s", id)
		}
	}
	// Every text is printed whole, not cut to a column.
	if n := strings.Count(res.stdout, "END-OF-TEXT"); n != 3 || !strings.Contains(res.stdout, "  | "+strings.Split(full, "\n")[1]) {
		t.Errorf("full texts printed %d times, want 3:\n%s", n, res.stdout)
	}
	if !strings.Contains(res.stderr, "sendctl approve -f "+file) {
		t.Errorf("review run does not say how to approve: %s", res.stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rf, err := parseApproveFile(data)
	if err != nil || rf.Reviewed == nil || rf.Account != "acc-1" || len(rf.Items) != 3 {
		t.Fatalf("review file %s: %+v, %v", data, rf, err)
	}
	for _, it := range rf.Items {
		if want := sampleRecord(it.SendID, tasks.StatePendingApproval).Digest; it.Digest != want {
			t.Errorf("%s: digest %s in the file, want the digest of the text printed %s", it.SendID, it.Digest, want)
		}
	}

	// Meanwhile a send is enqueued and one changes.
	mu.Lock()
	pending = append(pending, "s-4")
	changed = true
	mu.Unlock()

	res = run(t, api.srv.URL, "", "approve", "-f", file)
	if res.code != exitPartial {
		t.Fatalf("approve run: exit %d, want 7 (s-2 refused): %s", res.code, res.stderr)
	}
	mu.Lock()
	got := fmt.Sprint(approved)
	mu.Unlock()
	if want := fmt.Sprint([]approveItem{rf.Items[0], rf.Items[2]}); got != want {
		t.Errorf("approved %s, want exactly the reviewed %s", got, want)
	}
	if !strings.Contains(res.stdout, "digest_mismatch") {
		t.Errorf("the refused send is not reported:\n%s", res.stdout)
	}
	// s-2 is still pending (refused) and s-4 came after the review: both listed.
	if !strings.Contains(res.stderr, "2 send(s) pending approval were not approved") ||
		!strings.Contains(res.stderr, "  s-4  ") || !strings.Contains(res.stderr, "  s-2  ") {
		t.Errorf("sends not reviewed are not listed:\n%s", res.stderr)
	}
}

func FuzzParseSendFile(f *testing.F) {
	f.Add([]byte(`{"send_id":"s-1","operation":"chats_messages_send"}`))
	f.Add([]byte(`{"sends":[{"send_id":"s"}]}`))
	f.Add([]byte(`[{"send_id":"s"}]`))
	f.Add([]byte(`  `))
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs, batch, err := parseSendFile(data)
		if err == nil && !batch && len(reqs) != 1 {
			t.Fatalf("single request gave %d", len(reqs))
		}
	})
}

func FuzzParseIDFile(f *testing.F) {
	f.Add([]byte(`["s-1"]`))
	f.Add([]byte(`{"send_ids":["a","b"]}`))
	f.Add([]byte(`{"sends":[{"send_id":"a"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, err := parseIDFile(data)
		if err == nil && len(ids) == 0 {
			t.Fatal("no error and no ids")
		}
	})
}

// FuzzParseApproveFile: the review file (or a hand-made list) never panics the parser; what it
// accepts has a send id and a digest in every item, and a syntax error says where it is.
func FuzzParseApproveFile(f *testing.F) {
	f.Add([]byte(`[{"send_id":"s-1","digest":"ab"}]`))
	f.Add([]byte(`{"reviewed_at":"2026-03-01T09:00:00Z","account_id":"a","items":[{"send_id":"s","digest":"d"}]}`))
	f.Add([]byte("{\n  \"items\": [\n    {\"send_id\": \"s\" \"digest\": \"d\"}\n  ]\n}"))
	f.Add([]byte(`{"items":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := parseApproveFile(data)
		if err != nil {
			return
		}
		if len(rf.Items) == 0 {
			t.Fatal("accepted a file without items")
		}
		for _, it := range rf.Items {
			if it.SendID == "" || it.Digest == "" {
				t.Fatalf("accepted an item without send_id or digest: %+v", it)
			}
		}
	})
}

// FuzzParseTime: a time typed by a human either parses or is an error naming the input; never a
// panic, whatever the zone.
func FuzzParseTime(f *testing.F) {
	f.Add("2026-03-01T09:30:00+01:00", "Europe/Paris")
	f.Add("2026-03-01 09:30", "local")
	f.Add("2026-03-01", "")
	f.Add("last week", "UTC")
	f.Fuzz(func(t *testing.T, s, tz string) {
		z, err := parseZone(tz)
		if err != nil {
			return
		}
		if _, err := z.parseTime(s); err != nil && !strings.Contains(err.Error(), "is not a time") {
			t.Fatalf("error %v does not say what was wrong", err)
		}
	})
}
