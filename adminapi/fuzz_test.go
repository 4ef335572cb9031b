package adminapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// bodyRoutes are the routes that decode a request body.
var bodyRoutes = []string{
	"/v1/sends",
	"/v1/sends:batch",
	"/v1/sends/s-1/approve",
	"/v1/sends:approve",
	"/v1/sends/s-1/reject",
	"/v1/sends:reject",
	"/v1/sends/s-1/cancel",
	"/v1/optouts",
	"/v1/resume",
}

// FuzzRequestBodies posts arbitrary bytes to every route that reads a body:
// the answer is never a 5xx nor a panic, always JSON, and every error is in
// the envelope with a code.
func FuzzRequestBodies(f *testing.F) {
	e := newEnv(f)
	// A pending send so that decision bodies reach the ledger.
	if r := e.do("POST", "/v1/sends", tokSched, sendJSON("s-1", "hello")); r.status != http.StatusCreated {
		f.Fatalf("seed send: %d %s", r.status, r.raw)
	}
	seeds := []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"digest":"` + digestOf("s-1", "hello") + `"}`, `{"digest":null}`, `{"digest":42}`,
		`{"reason":"no"}`, `{"reason":"` + string(bytes.Repeat([]byte("r"), 2000)) + `"}`,
		`{"items":[{"send_id":"s-1","digest":"00"}]}`, `{"items":[{"send_id":"","digest":""},null]}`,
		`{"send_ids":["s-1","../x",""],"reason":"r"}`, `{"send_ids":null,"reason":""}`,
		`{"sends":[{"send_id":"a","operation":"chats_create","account_id":"x","attendees_ids":["+33600000000"],"text":"t"},1,null,{}]}`,
		`{"sends":[{"send_id":"b","operation":"chats_messages_send","account_id":"x","chat_id":"c","text":"t","window":{"timezone":"Mars/Base","from":"25:00"}}]}`,
		`{"send_id":"c","operation":"chats_messages_send","account_id":"x","chat_id":"c","attachments":[{"url":"http://[::1","size":-1}]}`,
		`{"contact_id":"33611111111@s.whatsapp.net"}`, `{"contact_id":"\u0000"}`, `{"a":1}{"b":2}`, `{"digest":"x"`, "\xff\xfe",
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := bodyRoutes[int(route)%len(bodyRoutes)]
		req := httptest.NewRequest("POST", path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tokRoot)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("POST %s %q = %d %s", path, body, w.Code, w.Body.Bytes())
		}
		var v map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("POST %s %q: answer is not a JSON object: %s", path, body, w.Body.Bytes())
		}
		if w.Code >= 400 {
			var env apiErr
			if json.Unmarshal(w.Body.Bytes(), &env) != nil || env.Error.Code == "" || env.Error.Message == "" {
				t.Fatalf("POST %s %q = %d without an error envelope: %s", path, body, w.Code, w.Body.Bytes())
			}
		}
	})
}

// FuzzAuditQuery sends arbitrary query strings to GET /v1/audit: never a 5xx nor a panic; a
// 400 names the field.
func FuzzAuditQuery(f *testing.F) {
	e := newEnv(f)
	e.enqueue("s-1")
	for _, s := range []string{"", "actor=alice", "from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", "cursor=1-0&limit=2",
		"cursor=abc", "limit=-1", "from=yesterday", "send_id=%00&account_id=x", "a=1&a=2", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest("GET", "/v1/audit", nil)
		req.URL.RawQuery = query
		req.Header.Set("Authorization", "Bearer "+tokRoot)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("GET /v1/audit?%s = %d %s", query, w.Code, w.Body.Bytes())
		}
		if w.Code >= 400 {
			var env apiErr
			if json.Unmarshal(w.Body.Bytes(), &env) != nil || env.Error.Code == "" || (w.Code == http.StatusBadRequest && len(env.Error.Fields) == 0) {
				t.Fatalf("GET /v1/audit?%s = %d: %s", query, w.Code, w.Body.Bytes())
			}
		}
	})
}
