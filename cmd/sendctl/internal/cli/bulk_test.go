package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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

func TestApproveFromList(t *testing.T) {
	list := pagedSends(t)
	api := newFakeAPI(t, func(c call) reply {
		if c.Method == http.MethodPost && c.Path == "/v1/sends:approve" {
			return reply{200, `{"results":[{"send_id":"s-1","status":200},{"send_id":"s-2","status":200},{"send_id":"s-3","status":200},
				{"send_id":"s-4","status":409,"error":{"code":"not_pending","message":"send s-4 was canceled"}},{"send_id":"s-5","status":200}]}`}
		}
		return list(c)
	})

	t.Run("dry run", func(t *testing.T) {
		res := run(t, api.srv.URL, "", "approve", "-from-list", "-account", "acc-1")
		if res.code != exitOK {
			t.Fatalf("exit %d: %s", res.code, res.stderr)
		}
		for _, c := range api.Calls() {
			if c.Method != http.MethodGet {
				t.Fatalf("approved without -yes: %s %s", c.Method, c.Path)
			}
			q, _ := url.ParseQuery(c.Query)
			if q.Get("state") != "pending_approval" || q.Get("account_id") != "acc-1" || q.Get("order") != "oldest" {
				t.Errorf("listing query %s", c.Query)
			}
		}
		digest := sampleRecord("s-5", tasks.StatePendingApproval).Digest
		if !strings.Contains(res.stdout, "s-5") || !strings.Contains(res.stdout, digest[:12]) {
			t.Errorf("dry run does not show what it would approve:\n%s", res.stdout)
		}
		if !strings.Contains(res.stderr, "would approve 5 send(s)") || !strings.Contains(res.stderr, "-yes") {
			t.Errorf("stderr %q", res.stderr)
		}
	})

	t.Run("yes", func(t *testing.T) {
		res := run(t, api.srv.URL, "", "approve", "-from-list", "-yes")
		if res.code != exitPartial {
			t.Fatalf("exit %d, want 7: %s", res.code, res.stderr)
		}
		var approveBody string
		for _, c := range api.Calls() {
			if c.Method == http.MethodPost {
				approveBody = c.Body
			}
		}
		var body struct {
			Items []approveItem `json:"items"`
		}
		if err := json.Unmarshal([]byte(approveBody), &body); err != nil || len(body.Items) != 5 {
			t.Fatalf("approve body %s", approveBody)
		}
		for _, it := range body.Items {
			if want := sampleRecord(it.SendID, tasks.StatePendingApproval).Digest; it.Digest != want {
				t.Errorf("%s approved with digest %s, want the listed %s", it.SendID, it.Digest, want)
			}
		}
		if !strings.Contains(res.stdout, "send s-4 was canceled") {
			t.Errorf("failed item not reported:\n%s", res.stdout)
		}
	})
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
