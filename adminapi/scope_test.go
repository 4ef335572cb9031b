package adminapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/tasks"
)

const (
	tokLyon  = "lyon-token-0123456789"  // approver+admin limited to acc-lyon
	tokParis = "paris-token-0123456789" // approver limited to acc-paris
)

func withScopedTokens(o *adminapi.Options) {
	o.Tokens = append(append([]adminapi.Token(nil), testTokens...),
		adminapi.Token{Identity: "lyon-rep", Roles: []string{adminapi.RoleApprover, adminapi.RoleAdmin}, Token: tokLyon, Accounts: []string{"acc-lyon"}},
		adminapi.Token{Identity: "paris-rep", Roles: []string{adminapi.RoleApprover}, Token: tokParis, Accounts: []string{"acc-paris"}},
	)
}

// TestScopedApproverSeesAndDecidesOnlyItsAccounts: every read and decision
// of a send of another account answers as if the send did not exist, and
// nothing changes; in its own account the scoped approver decides as usual.
func TestScopedApproverSeesAndDecidesOnlyItsAccounts(t *testing.T) {
	e := newEnv(t, withScopedTokens)
	e.enqueue("p-1") // acc-paris
	e.enqueue("p-2")
	d1 := digestOf("p-1", secretText)

	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"get", "GET", "/v1/sends/p-1", nil, http.StatusNotFound, "not_found"},
		{"approve", "POST", "/v1/sends/p-1/approve", map[string]string{"digest": d1}, http.StatusNotFound, "not_found"},
		{"reject", "POST", "/v1/sends/p-1/reject", map[string]string{"reason": "no"}, http.StatusNotFound, "not_found"},
		{"cancel (allowed by the admin role, refused by the scope)", "POST", "/v1/sends/p-1/cancel", nil, http.StatusNotFound, "not_found"},
		{"list other account", "GET", "/v1/sends?account_id=acc-paris", nil, http.StatusForbidden, "forbidden"},
		{"forecast", "GET", "/v1/accounts/acc-paris/forecast", nil, http.StatusForbidden, "forbidden"},
		{"pause other account", "POST", "/v1/accounts/acc-paris/pause", nil, http.StatusForbidden, "forbidden"},
		{"global pause", "POST", "/v1/pause", nil, http.StatusForbidden, "forbidden"},
		{"provider account", "GET", "/v1/provider/accounts/acc-paris", nil, http.StatusForbidden, "forbidden"},
		{"provider chats", "GET", "/v1/provider/chats?account_id=acc-paris", nil, http.StatusForbidden, "forbidden"},
		{"provider messages", "GET", "/v1/provider/chats/chat-paris-camille/messages", nil, http.StatusForbidden, "forbidden"},
		{"audit of another account", "GET", "/v1/audit?account_id=acc-paris", nil, http.StatusForbidden, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, e.do(tc.method, tc.path, tokLyon, tc.body), tc.status, tc.code)
		})
	}

	// Bulk: the out-of-scope item is a 404 line; nothing is decided.
	r := e.do("POST", "/v1/sends:approve", tokLyon, map[string]any{"items": []map[string]string{{"send_id": "p-1", "digest": d1}}})
	wantStatus(t, r, http.StatusOK, "")
	var res struct {
		Results []struct {
			SendID string `json:"send_id"`
			Status int    `json:"status"`
		} `json:"results"`
	}
	r.decode(t, &res)
	if len(res.Results) != 1 || res.Results[0].Status != http.StatusNotFound {
		t.Fatalf("bulk = %s", r.raw)
	}
	r = e.do("POST", "/v1/sends:reject", tokLyon, map[string]any{"send_ids": []string{"p-2"}, "reason": "no"})
	r.decode(t, &res)
	if len(res.Results) != 1 || res.Results[0].Status != http.StatusNotFound {
		t.Fatalf("bulk reject = %s", r.raw)
	}
	// Its own account's list is its default, and holds none of acc-paris's sends.
	r = e.do("GET", "/v1/sends", tokLyon, nil)
	wantStatus(t, r, http.StatusOK, "")
	var list struct {
		Sends []tasks.Record `json:"sends"`
	}
	r.decode(t, &list)
	if len(list.Sends) != 0 {
		t.Fatalf("lyon-rep lists %d sends of other accounts", len(list.Sends))
	}
	for _, id := range []string{"p-1", "p-2"} {
		if rec, err := e.l.Get(t.Context(), id); err != nil || rec.State != tasks.StatePendingApproval {
			t.Fatalf("%s = %+v, %v: a refused decision changed it", id, rec, err)
		}
	}

	// The audit trail of its own account holds none of acc-paris's entries.
	r = e.do("GET", "/v1/audit", tokLyon, nil)
	wantStatus(t, r, http.StatusOK, "")
	if strings.Contains(string(r.raw), "p-1") {
		t.Fatalf("lyon-rep reads acc-paris's audit: %s", r.raw)
	}
	// The approver of acc-paris sees and approves.
	wantStatus(t, e.do("GET", "/v1/sends/p-1", tokParis, nil), http.StatusOK, "")
	r = e.do("GET", "/v1/sends", tokParis, nil)
	r.decode(t, &list)
	if len(list.Sends) != 2 {
		t.Fatalf("paris-rep lists %d sends, want 2", len(list.Sends))
	}
	wantStatus(t, e.do("POST", "/v1/sends/p-1/approve", tokParis, map[string]string{"digest": d1}), http.StatusOK, "")
	// The lyon admin pauses its own account.
	wantStatus(t, e.do("POST", "/v1/accounts/acc-lyon/pause", tokLyon, nil), http.StatusOK, "")
}
