package adminapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

var hex64 = strings.Repeat("ab", 32)

func TestEnqueueCreatedThenSameThenConflict(t *testing.T) {
	e := newEnv(t)
	body := sendJSON("s-1", secretText)
	body["requested_by"] = "mallory" // identity comes from the token, never from the body

	r := e.do("POST", "/v1/sends", tokSched, body)
	wantStatus(t, r, http.StatusCreated, "")
	rec := r.record(t)
	if rec.State != tasks.StatePendingApproval || rec.Digest != digestOf("s-1", secretText) || rec.Request.RequestedBy != "sequencer" {
		t.Fatalf("record = %+v", rec)
	}

	r = e.do("POST", "/v1/sends", tokSched, body)
	wantStatus(t, r, http.StatusOK, "")
	if again := r.record(t); again.Digest != rec.Digest || again.SendID != "s-1" {
		t.Fatalf("second answer = %+v", again)
	}

	r = e.do("POST", "/v1/sends", tokSched, sendJSON("s-1", "other text"))
	wantStatus(t, r, http.StatusConflict, "conflict")
}

func TestEnqueueConcurrentOverHTTP(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			r := e.do("POST", "/v1/sends", tokSched, sendJSON("s-1", secretText))
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[http.StatusCreated] != 1 || statuses[http.StatusOK] != 49 {
		t.Fatalf("statuses = %v, want one 201 and 49 200", statuses)
	}
}

func TestBadInputNamesTheField(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name   string
		body   any
		fields []string
		code   string
	}{
		{"validation", map[string]any{"send_id": "s 1", "operation": "chats_messages_send", "account_id": "acc-paris", "text": strings.Repeat("x", 5000)},
			[]string{"send_id", "chat_id", "text"}, "invalid_request"},
		{"unknown field", `{"send_id":"s-1","operation":"chats_messages_send","account_id":"a","chat_id":"c","text":"hi","colour":"red"}`,
			[]string{"colour"}, "invalid_request"},
		{"wrong type", `{"send_id":42}`, []string{"send_id"}, "invalid_request"},
		{"malformed", `{"send_id":`, []string{"body"}, "invalid_request"},
		{"trailing data", `{"send_id":"s-1"} {}`, []string{"body"}, "invalid_request"},
		{"raw phone number", map[string]any{"send_id": "s-2", "operation": "chats_create", "account_id": "acc-paris", "attendees_ids": []string{"+33 6 12 34 56 78"}, "text": "hi"},
			[]string{"attendees_ids[0]"}, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("POST", "/v1/sends", tokSched, c.body)
			wantStatus(t, r, http.StatusBadRequest, c.code)
			got := fieldNames(r.err(t))
			for _, f := range c.fields {
				if !slices.Contains(got, f) {
					t.Fatalf("fields %v do not name %q", got, f)
				}
			}
		})
	}
	var st struct{ Counts map[string]int64 }
	e.do("GET", "/v1/stats", tokSched, nil).decode(t, &st)
	if st.Counts["pending_approval"] != 0 {
		t.Fatalf("a refused send was stored: %v", st.Counts)
	}
	// Decision bodies too.
	e.enqueue("s-9")
	r := e.do("POST", "/v1/sends/s-9/approve", tokAppr, `{"digest":"`+digestOf("s-9", secretText)+`","note":"x"}`)
	wantStatus(t, r, http.StatusBadRequest, "invalid_request")
	if got := fieldNames(r.err(t)); !slices.Equal(got, []string{"note"}) {
		t.Fatalf("fields = %v", got)
	}
	wantStatus(t, e.do("POST", "/v1/sends/s-9/approve", tokAppr, `{"digest":"nothex"}`), http.StatusBadRequest, "invalid_request")
	wantStatus(t, e.do("POST", "/v1/sends/s-9/reject", tokAppr, `{}`), http.StatusBadRequest, "invalid_request")
	wantStatus(t, e.do("GET", "/v1/sends?state=bogus&colour=red", tokAppr, nil), http.StatusBadRequest, "invalid_request")
}

func TestApprovalRules(t *testing.T) {
	e := newEnv(t)
	e.enqueue("s-1")
	digest := digestOf("s-1", secretText)

	wantStatus(t, e.do("POST", "/v1/sends/s-1/approve", tokAppr, map[string]string{"digest": digestOf("s-1", "other")}), http.StatusConflict, "digest_mismatch")
	wantStatus(t, e.do("POST", "/v1/sends/nope/approve", tokAppr, map[string]string{"digest": digest}), http.StatusNotFound, "not_found")

	// alice holds both roles; she may enqueue, but not approve her own send.
	r := e.do("POST", "/v1/sends", tokBoth, sendJSON("mine", secretText))
	wantStatus(t, r, http.StatusCreated, "")
	wantStatus(t, e.do("POST", "/v1/sends/mine/approve", tokBoth, map[string]string{"digest": digestOf("mine", secretText)}), http.StatusForbidden, "self_approval")

	r = e.do("POST", "/v1/sends/s-1/approve", tokAppr, map[string]string{"digest": digest})
	wantStatus(t, r, http.StatusOK, "")
	if rec := r.record(t); rec.State != tasks.StateApproved || rec.Approval == nil || rec.Approval.By != "approver-1" || rec.Approval.Digest != digest {
		t.Fatalf("approved = %+v", rec)
	}
	wantStatus(t, e.do("POST", "/v1/sends/s-1/approve", tokAppr, map[string]string{"digest": digest}), http.StatusConflict, "not_pending")

	// Rejected after approval (not yet sent): final, then any decision is 409 final.
	r = e.do("POST", "/v1/sends/s-1/reject", tokAppr, map[string]string{"reason": "wrong contact"})
	wantStatus(t, r, http.StatusOK, "")
	if rec := r.record(t); rec.State != tasks.StateRejected || rec.Decision == nil || rec.Decision.By != "approver-1" {
		t.Fatalf("rejected = %+v", rec)
	}
	wantStatus(t, e.do("POST", "/v1/sends/s-1/cancel", tokSched, nil), http.StatusConflict, "final")

	// Cancel without a body, by the scheduler.
	e.enqueue("s-2")
	r = e.do("POST", "/v1/sends/s-2/cancel", tokSched, nil)
	wantStatus(t, r, http.StatusOK, "")
	if rec := r.record(t); rec.State != tasks.StateCanceled {
		t.Fatalf("canceled = %+v", rec)
	}

	// GET shows the whole story.
	r = e.do("GET", "/v1/sends/s-1", tokSched, nil)
	wantStatus(t, r, http.StatusOK, "")
	if rec := r.record(t); len(rec.History) < 3 || rec.Result == nil || rec.Result.State != tasks.StateRejected {
		t.Fatalf("record = %+v", rec)
	}
}

// TestRolesOnEveryRoute calls every route with every kind of caller.
func TestRolesOnEveryRoute(t *testing.T) {
	e := newEnv(t)
	sched, appr, admin := tokSched, tokAppr, tokAdmin
	all := []string{sched, appr, admin}
	routes := []struct {
		method, path string
		body         any
		allowed      []string // nil: public
	}{
		{"POST", "/v1/sends", sendJSON("r-1", "hello"), []string{sched}},
		{"POST", "/v1/sends:batch", map[string]any{"sends": []any{sendJSON("r-2", "hello")}}, []string{sched}},
		{"GET", "/v1/sends", nil, all},
		{"GET", "/v1/sends/r-1", nil, all},
		{"POST", "/v1/sends/none/approve", map[string]string{"digest": hex64}, []string{appr}},
		{"POST", "/v1/sends:approve", map[string]any{"items": []any{map[string]string{"send_id": "none", "digest": hex64}}}, []string{appr}},
		{"POST", "/v1/sends/none/reject", map[string]string{"reason": "no"}, []string{appr}},
		{"POST", "/v1/sends:reject", map[string]any{"send_ids": []string{"none"}, "reason": "no"}, []string{appr}},
		{"POST", "/v1/sends/none/cancel", nil, []string{sched, admin}},
		{"POST", "/v1/pause", nil, []string{admin}},
		{"POST", "/v1/resume", nil, []string{admin}},
		{"POST", "/v1/accounts/acc-z/pause", nil, []string{admin}},
		{"POST", "/v1/accounts/acc-z/resume", nil, []string{admin}},
		{"GET", "/v1/pause", nil, all},
		{"GET", "/v1/accounts/acc-paris/forecast", nil, all},
		{"GET", "/v1/optouts", nil, all},
		{"POST", "/v1/optouts", map[string]string{"contact_id": "33611111111@s.whatsapp.net"}, []string{admin}},
		{"DELETE", "/v1/optouts/33611111111@s.whatsapp.net", nil, []string{admin}},
		{"GET", "/v1/stats", nil, all},
		{"GET", "/v1/audit", nil, []string{appr, admin}},
		{"GET", "/v1/provider/accounts/acc-paris", nil, all},
		{"GET", "/v1/provider/chats?account_id=acc-paris", nil, all},
		{"GET", "/v1/provider/chats/chat-paris-camille/messages", nil, all},
		{"GET", "/v1/provider/chats/chat-paris-camille/attendees", nil, all},
		{"GET", "/healthz", nil, nil},
		{"GET", "/readyz", nil, nil},
		{"GET", "/metrics", nil, nil},
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			if rt.allowed == nil {
				for _, tok := range []string{"", tokBad, sched} {
					wantStatus(t, e.do(rt.method, rt.path, tok, rt.body), http.StatusOK, "")
				}
				return
			}
			wantStatus(t, e.do(rt.method, rt.path, "", rt.body), http.StatusUnauthorized, "unauthorized")
			wantStatus(t, e.do(rt.method, rt.path, tokBad, rt.body), http.StatusUnauthorized, "unauthorized")
			for _, tok := range all {
				r := e.do(rt.method, rt.path, tok, rt.body)
				if slices.Contains(rt.allowed, tok) {
					if r.status == http.StatusUnauthorized || r.status == http.StatusForbidden || r.status >= 500 {
						t.Fatalf("token %s: %d %s, want allowed", tok[:5], r.status, r.raw)
					}
				} else {
					wantStatus(t, r, http.StatusForbidden, "forbidden")
				}
			}
		})
	}
	// Lower-case scheme is accepted; a token with extra characters is not.
	r := e.do("GET", "/v1/stats", "", nil)
	wantStatus(t, r, http.StatusUnauthorized, "unauthorized")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Fatal("no WWW-Authenticate on 401")
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/v1/stats", nil)
	req.Header.Set("Authorization", "bearer "+tokAdmin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("lower-case bearer: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	wantStatus(t, e.do("GET", "/v1/stats", tokAdmin+"x", nil), http.StatusUnauthorized, "unauthorized")
	wantStatus(t, e.do("GET", "/v1/stats", tokAdmin[:len(tokAdmin)-1], nil), http.StatusUnauthorized, "unauthorized")
}

func TestBulkPartialSuccess(t *testing.T) {
	e := newEnv(t)
	e.enqueue("dup")
	r := e.do("POST", "/v1/sends:batch", tokSched, map[string]any{"sends": []any{
		sendJSON("new", "hello"),
		sendJSON("dup", secretText),
		sendJSON("dup", "other content"),
		map[string]any{"send_id": "bad", "operation": "chats_messages_send", "account_id": "acc-paris"},
		map[string]any{"send_id": "odd", "surprise": true},
	}})
	wantStatus(t, r, http.StatusOK, "")
	var res struct {
		Results []struct {
			SendID string        `json:"send_id"`
			Status int           `json:"status"`
			Record *tasks.Record `json:"record"`
			Error  *struct {
				Code   string             `json:"code"`
				Fields []tasks.FieldError `json:"fields"`
			} `json:"error"`
		} `json:"results"`
	}
	r.decode(t, &res)
	want := []struct {
		id     string
		status int
		code   string
	}{{"new", 201, ""}, {"dup", 200, ""}, {"dup", 409, "conflict"}, {"bad", 400, "invalid_request"}, {"odd", 400, "invalid_request"}}
	if len(res.Results) != len(want) {
		t.Fatalf("results = %s", r.raw)
	}
	for i, w := range want {
		got := res.Results[i]
		if got.SendID != w.id || got.Status != w.status || (w.code == "") != (got.Error == nil) || (got.Error != nil && got.Error.Code != w.code) || (w.code == "") != (got.Record != nil) {
			t.Fatalf("result %d = %+v, want %+v (%s)", i, got, w, r.raw)
		}
	}
	if f := res.Results[3].Error.Fields; len(f) == 0 || f[0].Field != "chat_id" {
		t.Fatalf("bad item fields = %+v", f)
	}

	r = e.do("POST", "/v1/sends:approve", tokAppr, map[string]any{"items": []any{
		map[string]string{"send_id": "new", "digest": digestOf("new", "hello")},
		map[string]string{"send_id": "dup", "digest": digestOf("dup", "other content")},
		map[string]string{"send_id": "ghost", "digest": hex64},
	}})
	wantStatus(t, r, http.StatusOK, "")
	r.decode(t, &res)
	if res.Results[0].Status != 200 || res.Results[0].Record.State != tasks.StateApproved ||
		res.Results[1].Status != 409 || res.Results[1].Error.Code != "digest_mismatch" ||
		res.Results[2].Status != 404 {
		t.Fatalf("bulk approve = %s", r.raw)
	}

	r = e.do("POST", "/v1/sends:reject", tokAppr, map[string]any{"send_ids": []string{"dup", "new", "ghost"}, "reason": "campaign paused"})
	wantStatus(t, r, http.StatusOK, "")
	r.decode(t, &res)
	if res.Results[0].Status != 200 || res.Results[0].Record.State != tasks.StateRejected ||
		res.Results[1].Status != 200 || res.Results[1].Record.State != tasks.StateRejected || res.Results[2].Status != 404 {
		t.Fatalf("bulk reject = %s", r.raw)
	}

	tooMany := make([]string, adminapi.MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprint("x", i)
	}
	wantStatus(t, e.do("POST", "/v1/sends:reject", tokAppr, map[string]any{"send_ids": tooMany, "reason": "r"}), http.StatusBadRequest, "invalid_request")
	wantStatus(t, e.do("POST", "/v1/sends:approve", tokAppr, `{"items":[]}`), http.StatusBadRequest, "invalid_request")
}

func TestBodyRules(t *testing.T) {
	e := newEnv(t, func(o *adminapi.Options) { o.MaxBodyBytes = 2048 })
	big := `{"send_id":"s-1","text":"` + strings.Repeat("x", 4096) + `"}`
	wantStatus(t, e.do("POST", "/v1/sends", tokSched, big), http.StatusRequestEntityTooLarge, "body_too_large")
	// Without a Content-Length the cap still holds.
	wantStatus(t, e.do("POST", "/v1/sends", tokSched, strings.NewReader(big)), http.StatusRequestEntityTooLarge, "body_too_large")
	wantStatus(t, e.doCT("POST", "/v1/sends", tokSched, "text/plain", `{}`), http.StatusUnsupportedMediaType, "unsupported_media_type")
	wantStatus(t, e.doCT("POST", "/v1/sends", tokSched, "", `{}`), http.StatusUnsupportedMediaType, "unsupported_media_type")
	wantStatus(t, e.doCT("POST", "/v1/sends", tokSched, "application/json; charset=latin1", `{}`), http.StatusUnsupportedMediaType, "unsupported_media_type")
	wantStatus(t, e.do("POST", "/v1/sends", tokSched, ""), http.StatusBadRequest, "invalid_request")
	// A route without a body takes nothing or {}; anything else is named.
	wantStatus(t, e.do("POST", "/v1/pause", tokAdmin, `{}`), http.StatusOK, "")
	r := e.do("POST", "/v1/resume", tokAdmin, `{"force":true}`)
	wantStatus(t, r, http.StatusBadRequest, "invalid_request")
	if got := fieldNames(r.err(t)); !slices.Equal(got, []string{"force"}) {
		t.Fatalf("fields = %v", got)
	}
	// The default cap is 1 MiB.
	d := newEnv(t)
	huge := `{"sends":[` + strings.Repeat(`{"send_id":"x"},`, 80000) + `{}]}`
	wantStatus(t, d.do("POST", "/v1/sends:batch", tokSched, huge), http.StatusRequestEntityTooLarge, "body_too_large")
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	e := newEnv(t)
	wantStatus(t, e.do("GET", "/v1/nothing", tokAdmin, nil), http.StatusNotFound, "not_found")
	r := e.do("DELETE", "/v1/sends", tokAdmin, nil)
	wantStatus(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "POST") || !strings.Contains(allow, "GET") {
		t.Fatalf("Allow = %q", allow)
	}
	wantStatus(t, e.do("GET", "/v1/sends/nope", tokAdmin, nil), http.StatusNotFound, "not_found")
}

func TestListPagesAndFilters(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.enqueue(fmt.Sprintf("s-%d", i))
	}
	r := e.do("POST", "/v1/sends/s-0/approve", tokAppr, map[string]string{"digest": digestOf("s-0", secretText)})
	wantStatus(t, r, http.StatusOK, "")

	type page struct {
		Sends      []tasks.Record `json:"sends"`
		NextCursor string         `json:"next_cursor"`
	}
	var ids []string
	cursor := ""
	for range 10 {
		r := e.do("GET", "/v1/sends?state=pending_approval&limit=2&cursor="+cursor, tokAppr, nil)
		wantStatus(t, r, http.StatusOK, "")
		var p page
		r.decode(t, &p)
		for _, s := range p.Sends {
			ids = append(ids, s.SendID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(ids, []string{"s-4", "s-3", "s-2", "s-1"}) {
		t.Fatalf("pending newest first = %v", ids)
	}
	r = e.do("GET", "/v1/sends?state=approved&account_id=acc-paris&order=oldest", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	var p page
	r.decode(t, &p)
	if len(p.Sends) != 1 || p.Sends[0].SendID != "s-0" || p.NextCursor != "" {
		t.Fatalf("approved = %s", r.raw)
	}
	r = e.do("GET", "/v1/sends?state=sent", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	if !strings.Contains(string(r.raw), `"sends":[]`) {
		t.Fatalf("empty page = %s", r.raw)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "order=up", "state=x", "limit=1&limit=2", "cursor=bogus", "cursor=czEuMA"} {
		wantStatus(t, e.do("GET", "/v1/sends?"+q, tokAppr, nil), http.StatusBadRequest, "invalid_request")
	}
}

func TestPauseOptOutsStats(t *testing.T) {
	e := newEnv(t)
	e.enqueue("s-1")
	r := e.do("POST", "/v1/accounts/acc-paris/pause", tokAdmin, nil)
	wantStatus(t, r, http.StatusOK, "")
	if string(r.raw) != `{"global":false,"accounts":["acc-paris"]}`+"\n" {
		t.Fatalf("pause = %s", r.raw)
	}
	wantStatus(t, e.do("POST", "/v1/pause", tokAdmin, nil), http.StatusOK, "")
	r = e.do("GET", "/v1/pause", tokSched, nil)
	if string(r.raw) != `{"global":true,"accounts":["acc-paris"]}`+"\n" {
		t.Fatalf("pause state = %s", r.raw)
	}
	r = e.do("POST", "/v1/resume", tokAdmin, nil)
	if string(r.raw) != `{"global":false,"accounts":["acc-paris"]}`+"\n" {
		t.Fatalf("resume = %s", r.raw)
	}
	wantStatus(t, e.do("POST", "/v1/accounts/bad%20id/pause", tokAdmin, nil), http.StatusBadRequest, "invalid_request")

	r = e.do("POST", "/v1/optouts", tokAdmin, map[string]string{"contact_id": "33611111111@s.whatsapp.net"})
	wantStatus(t, r, http.StatusOK, "")
	if !strings.HasPrefix(string(r.raw), `{"optouts":["33611111111@s.whatsapp.net"],"entries":[{"contact_id":"33611111111@s.whatsapp.net","reason":"request","source":"api","by":"admin-1","at":"`) {
		t.Fatalf("optouts = %s", r.raw)
	}
	wantStatus(t, e.do("POST", "/v1/optouts", tokAdmin, map[string]string{"contact_id": ""}), http.StatusBadRequest, "invalid_request")
	r = e.do("DELETE", "/v1/optouts/33611111111@s.whatsapp.net", tokAdmin, nil)
	if string(r.raw) != `{"optouts":[],"entries":[]}`+"\n" {
		t.Fatalf("optouts after delete = %s", r.raw)
	}

	r = e.do("GET", "/v1/stats", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	var st struct {
		Counts map[string]int64 `json:"counts"`
		Outbox *int64           `json:"outbox"`
		Paused struct {
			Global   bool     `json:"global"`
			Accounts []string `json:"accounts"`
		} `json:"paused"`
	}
	r.decode(t, &st)
	if st.Counts["pending_approval"] != 1 || st.Outbox == nil || !slices.Equal(st.Paused.Accounts, []string{"acc-paris"}) {
		t.Fatalf("stats = %s", r.raw)
	}
}

func TestProviderLookups(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v1/provider/accounts/acc-paris", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	if !strings.Contains(string(r.raw), `"id":"acc-paris"`) {
		t.Fatalf("account = %s", r.raw)
	}
	wantStatus(t, e.do("GET", "/v1/provider/accounts/acc-nowhere", tokAppr, nil), http.StatusNotFound, "not_found")

	var list struct {
		Object string           `json:"object"`
		Items  []map[string]any `json:"items"`
		Cursor string           `json:"cursor"`
	}
	r = e.do("GET", "/v1/provider/chats?account_id=acc-paris&limit=2", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	r.decode(t, &list)
	if len(list.Items) != 2 || list.Cursor == "" {
		t.Fatalf("chats = %s", r.raw)
	}
	r = e.do("GET", "/v1/provider/chats/chat-paris-camille/messages?limit=10", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	r.decode(t, &list)
	if len(list.Items) == 0 {
		t.Fatalf("messages = %s", r.raw)
	}
	r = e.do("GET", "/v1/provider/chats/chat-paris-camille/attendees", tokAppr, nil)
	wantStatus(t, r, http.StatusOK, "")
	r.decode(t, &list)
	if len(list.Items) == 0 {
		t.Fatalf("attendees = %s", r.raw)
	}
	wantStatus(t, e.do("GET", "/v1/provider/chats/no-such-chat/messages", tokAppr, nil), http.StatusNotFound, "not_found")
	wantStatus(t, e.do("GET", "/v1/provider/chats?limit=999", tokAppr, nil), http.StatusBadRequest, "invalid_request")
	wantStatus(t, e.do("GET", "/v1/provider/chats?since=yesterday", tokAppr, nil), http.StatusBadRequest, "invalid_request")

	none := newEnv(t, func(o *adminapi.Options) { o.Provider = nil })
	wantStatus(t, none.do("GET", "/v1/provider/accounts/acc-paris", tokAppr, nil), http.StatusServiceUnavailable, "unavailable")

	// The global request rate cannot be waited for: no request goes out, and the answer is
	// 503 (ours), not 502 (the provider's).
	unpaced := newEnv(t, func(o *adminapi.Options) {
		pc, err := provider.New(provider.Options{BaseURL: "http://127.0.0.1:1", APIKey: simKey,
			Pacer: func(context.Context) error { return errors.New("redis down") }})
		if err != nil {
			t.Fatal(err)
		}
		o.Provider = pc
	})
	wantStatus(t, unpaced.do("GET", "/v1/provider/accounts/acc-paris", tokAppr, nil), http.StatusServiceUnavailable, "unavailable")
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t)
	wantStatus(t, e.do("GET", "/healthz", "", nil), http.StatusOK, "")
	wantStatus(t, e.do("GET", "/readyz", "", nil), http.StatusOK, "")
	e.ready = errors.New("redis: dial tcp 10.1.2.3:6379: connect: connection refused")
	for range 5 {
		r := e.do("GET", "/readyz", "", nil)
		wantStatus(t, r, http.StatusServiceUnavailable, "unavailable")
		// Unauthenticated: the answer names no address and no dial error.
		if strings.Contains(string(r.raw), "10.1.2.3") || strings.Contains(string(r.raw), "refused") {
			t.Fatalf("/readyz tells an anonymous caller the cause: %s", r.raw)
		}
	}
	// The cause is logged, once however often the probe asks.
	if got := e.logs.FilterMessage("not ready").All(); len(got) != 1 || !strings.Contains(got[0].ContextMap()["error"].(string), "10.1.2.3") {
		t.Fatalf("not-ready log lines: %+v", got)
	}
	r := e.do("GET", "/metrics", "", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.raw), "sendworker_test_total") {
		t.Fatalf("metrics = %d %s", r.status, r.raw)
	}
	none := newEnv(t, func(o *adminapi.Options) { o.Metrics = nil })
	wantStatus(t, none.do("GET", "/metrics", "", nil), http.StatusNotFound, "not_found")
}

func TestServerTimeoutsCutSlowClients(t *testing.T) {
	s := adminapi.NewServer("127.0.0.1:0", http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Fatalf("server timeouts not all set: %+v", s)
	}

	// A client that trickles its headers is cut off at ReadHeaderTimeout.
	e := newEnv(t)
	srv := adminapi.NewServer("127.0.0.1:0", e.h)
	srv.ReadHeaderTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	// Trickle the request line and headers, one byte every 50ms, never finishing.
	go func() {
		for _, c := range []byte("GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("y", 200)) {
			if _, err := conn.Write([]byte{c}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn) // returns when the server closes the connection
	if isTimeout(err) {
		t.Fatal("slow client was not cut off within 5s")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("cut off after %v, want about %v", took, srv.ReadHeaderTimeout)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestLogsCarryNoSecrets runs a full flow and checks that no log line holds
// a token or message text, and that each decision has one line with who.
func TestLogsCarryNoSecrets(t *testing.T) {
	e := newEnv(t)
	e.enqueue("s-1")
	e.do("POST", "/v1/sends/s-1/approve", tokAppr, map[string]string{"digest": digestOf("s-1", secretText)})
	e.do("POST", "/v1/sends/s-1/reject", tokAppr, map[string]string{"reason": "because"})
	e.do("GET", "/v1/sends/s-1", tokBad, nil)
	e.do("POST", "/v1/sends", tokSched, sendJSON("s-1", "other "+secretText))
	e.do("GET", "/v1/provider/chats/chat-paris-camille/messages", tokAdmin, nil)

	approved := 0
	for _, entry := range e.logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		for _, secret := range []string{tokSched, tokAppr, tokAdmin, tokBad, secretText, "Camille"} {
			if strings.Contains(line, secret) {
				t.Errorf("log line leaks %q: %s", secret, line)
			}
		}
		if entry.Message == "send approved" {
			approved++
			if m := entry.ContextMap(); m["by"] != "approver-1" || m["send_id"] != "s-1" {
				t.Errorf("approval line = %s", line)
			}
		}
	}
	if approved != 1 {
		t.Fatalf("%d approval lines, want 1", approved)
	}
}

// TestAuditAPI: GET /v1/audit lists the decisions, filtered by actor, send, account and time,
// paged by cursor; bad filters name their field.
func TestAuditAPI(t *testing.T) {
	e := newEnv(t)
	e.enqueue("s-1")
	wantStatus(t, e.do("POST", "/v1/sends/s-1/reject", tokAppr, map[string]string{"reason": "wrong contact"}), http.StatusOK, "")
	wantStatus(t, e.do("POST", "/v1/accounts/acc-paris/pause", tokAdmin, nil), http.StatusOK, "")

	type answer struct {
		Entries []struct {
			ID        string `json:"id"`
			Event     string `json:"event"`
			By        string `json:"by"`
			SendID    string `json:"send_id"`
			AccountID string `json:"account_id"`
			Note      string `json:"note"`
		} `json:"entries"`
		NextCursor string `json:"next_cursor"`
	}
	get := func(query string) answer {
		t.Helper()
		r := e.do("GET", "/v1/audit"+query, tokAdmin, nil)
		wantStatus(t, r, http.StatusOK, "")
		var a answer
		r.decode(t, &a)
		return a
	}
	all := get("")
	if len(all.Entries) != 3 || all.Entries[0].Event != "enqueued" || all.Entries[1].Event != "rejected" ||
		all.Entries[1].By != "approver-1" || all.Entries[1].Note != "wrong contact" || all.Entries[2].Event != "paused" {
		t.Fatalf("audit = %+v", all)
	}
	if a := get("?actor=admin-1"); len(a.Entries) != 1 || a.Entries[0].Event != "paused" {
		t.Fatalf("actor filter: %+v", a)
	}
	if a := get("?send_id=s-1&account_id=acc-paris"); len(a.Entries) != 2 {
		t.Fatalf("send and account filter: %+v", a)
	}
	if a := get("?from=" + time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z")); len(a.Entries) != 0 {
		t.Fatalf("from the future: %+v", a)
	}
	p1 := get("?limit=2")
	if len(p1.Entries) != 2 || p1.NextCursor == "" {
		t.Fatalf("page 1: %+v", p1)
	}
	if p2 := get("?limit=2&cursor=" + p1.NextCursor); len(p2.Entries) != 1 || p2.Entries[0].ID != all.Entries[2].ID || p2.NextCursor != "" {
		t.Fatalf("page 2: %+v", p2)
	}
	for _, bad := range []string{"?from=yesterday", "?limit=0", "?cursor=abc", "?actr=x"} {
		wantStatus(t, e.do("GET", "/v1/audit"+bad, tokAdmin, nil), http.StatusBadRequest, "invalid_request")
	}
}
