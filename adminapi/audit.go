package adminapi

import (
	"net/http"
	"time"

	"github.com/sendworker/sendworker/ledger"
)

type auditAnswer struct {
	Entries    []ledger.AuditEntry `json:"entries"`
	NextCursor string              `json:"next_cursor"`
}

// GET /v1/audit?actor=&send_id=&account_id=&from=&to=&cursor=&limit=: the decisions, oldest
// first. from and to are RFC 3339 times (inclusive). A page may be short (even empty) with a
// next_cursor: the server reads a bounded part of the stream per call; follow the cursor.
func (a *api) audit(r *http.Request, c *caller, _ []byte) (int, any, error) {
	q := parseQuery(r, "actor", "send_id", "account_id", "from", "to", "cursor", "limit")
	aq := ledger.AuditQuery{Actor: q.get("actor"), SendID: q.get("send_id"), AccountID: q.get("account_id"),
		Limit: q.limit(ledger.MaxAuditLimit), Cursor: q.cursor()}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &aq.From}, {"to", &aq.To}} {
		if s := q.get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				q.add(f.name, "invalid_time", "an RFC 3339 time such as 2026-03-01T09:30:00Z")
			}
			*f.dst = t
		}
	}
	if !aq.From.IsZero() && !aq.To.IsZero() && aq.To.Before(aq.From) {
		q.add("to", "invalid", "before from")
	}
	if err := q.err(); err != nil {
		return 0, nil, err
	}
	// A scoped caller reads only its accounts' entries (scope.go).
	acct, err := c.scopedList(aq.AccountID)
	if err != nil {
		return 0, nil, err
	}
	aq.AccountID = acct
	entries, next, err := a.svc.Ledger().Audit(r.Context(), aq)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, auditAnswer{Entries: entries, NextCursor: next}, nil
}
