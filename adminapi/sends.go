package adminapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// itemResult is one line of a bulk answer.
type itemResult struct {
	SendID string        `json:"send_id"`
	Status int           `json:"status"`
	Record *tasks.Record `json:"record,omitempty"`
	Error  *errorBody    `json:"error,omitempty"`
}

type results struct {
	Results []itemResult `json:"results"`
}

func itemOf(sendID string, okStatus int, rec *tasks.Record, err error) itemResult {
	if err != nil {
		e := classify(err)
		return itemResult{SendID: sendID, Status: e.status, Error: e.body()}
	}
	return itemResult{SendID: sendID, Status: okStatus, Record: rec}
}

// POST /v1/sends: 201 new, 200 the same send again, 409 the send_id with other content.
// A requested_by in the body is overwritten by the caller's identity.
func (a *api) enqueue(r *http.Request, c *caller, body []byte) (int, any, error) {
	req, err := tasks.DecodeRequest(bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if err := c.checkRequest(req); err != nil {
		return 0, nil, err
	}
	rec, created, err := a.svc.Enqueue(r.Context(), *req, c.identity)
	if err != nil {
		return 0, nil, err
	}
	if created {
		return http.StatusCreated, rec, nil
	}
	return http.StatusOK, rec, nil
}

type batchBody struct {
	Sends []json.RawMessage `json:"sends"`
}

// POST /v1/sends:batch: each send is decoded, validated and enqueued on its
// own; one bad item is a 400 line, not a failed request.
func (a *api) enqueueBatch(r *http.Request, c *caller, body []byte) (int, any, error) {
	var b batchBody
	if err := decodeStrict(body, &b); err != nil {
		return 0, nil, err
	}
	if err := checkCount("sends", len(b.Sends)); err != nil {
		return 0, nil, err
	}
	out := make([]itemResult, len(b.Sends))
	var (
		reqs []tasks.SendRequest
		at   []int // index in out of each req
	)
	for i, raw := range b.Sends {
		req, err := tasks.DecodeRequest(bytes.NewReader(raw))
		if err == nil {
			err = c.checkRequest(req)
		}
		if err != nil {
			out[i] = itemOf(peekSendID(raw), 0, nil, err)
			continue
		}
		reqs = append(reqs, *req)
		at = append(at, i)
	}
	for j, res := range a.svc.EnqueueMany(r.Context(), reqs, c.identity) {
		status := http.StatusOK
		if res.Created {
			status = http.StatusCreated
		}
		out[at[j]] = itemOf(reqs[j].SendID, status, res.Record, res.Err)
	}
	return http.StatusOK, results{Results: out}, nil
}

// peekSendID reads send_id from an item that failed strict decoding, so its
// result line can still name it.
func peekSendID(raw json.RawMessage) string {
	var v struct {
		SendID string `json:"send_id"`
	}
	if json.Unmarshal(raw, &v) != nil || len(v.SendID) > tasks.MaxSendIDLen {
		return ""
	}
	return v.SendID
}

func checkCount(field string, n int) error {
	switch {
	case n == 0:
		return invalid(field, "required", "at least one item")
	case n > MaxBatch:
		return invalid(field, "too_many", fmt.Sprintf("at most %d items per request", MaxBatch))
	}
	return nil
}

type listAnswer struct {
	Sends      []*tasks.Record `json:"sends"`
	NextCursor string          `json:"next_cursor"`
}

// GET /v1/sends?state=&account_id=&limit=&cursor=&order=oldest
func (a *api) list(r *http.Request, c *caller, _ []byte) (int, any, error) {
	q := parseQuery(r, "state", "account_id", "limit", "cursor", "order")
	lq := ledger.Query{AccountID: q.get("account_id"), Limit: q.limit(1000), Cursor: q.cursor()}
	if s := tasks.State(q.get("state")); s != "" {
		if !s.Valid() {
			q.add("state", "invalid", "unknown state")
		}
		lq.State = s
	}
	if len(lq.AccountID) > tasks.MaxAccountIDLen {
		q.add("account_id", "too_long", fmt.Sprintf("at most %d characters", tasks.MaxAccountIDLen))
	}
	switch q.get("order") {
	case "", "newest":
	case "oldest":
		lq.Oldest = true
	default:
		q.add("order", "invalid", "oldest or newest")
	}
	if err := q.err(); err != nil {
		return 0, nil, err
	}
	acct, err := c.scopedList(lq.AccountID)
	if err != nil {
		return 0, nil, err
	}
	lq.AccountID = acct
	page, err := a.svc.Ledger().List(r.Context(), lq)
	if err != nil {
		return 0, nil, err
	}
	if page.Records == nil {
		page.Records = []*tasks.Record{}
	}
	return http.StatusOK, listAnswer{Sends: page.Records, NextCursor: page.NextCursor}, nil
}

// GET /v1/sends/{send_id}
func (a *api) get(r *http.Request, c *caller, _ []byte) (int, any, error) {
	id := r.PathValue("send_id") // the Service checks it; an impossible id is simply not found
	rec, err := a.svc.Ledger().Get(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	if !c.scope.Allows(rec.Request.AccountID) {
		return 0, nil, sendNotFound(id)
	}
	return http.StatusOK, rec, nil
}

type approveBody struct {
	Digest string `json:"digest"`
}

// POST /v1/sends/{send_id}/approve {"digest"}
func (a *api) approve(r *http.Request, c *caller, body []byte) (int, any, error) {
	id := r.PathValue("send_id") // the Service checks it; an impossible id is simply not found
	var b approveBody
	if err := decodeStrict(body, &b); err != nil {
		return 0, nil, err
	}
	if err := a.visible(r.Context(), c, id); err != nil {
		return 0, nil, err
	}
	rec, err := a.svc.Approve(r.Context(), id, b.Digest, c.identity)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}

type approveBatchBody struct {
	Items []approval.ApproveItem `json:"items"`
}

// POST /v1/sends:approve {"items":[{"send_id","digest"}]}
func (a *api) approveBatch(r *http.Request, c *caller, body []byte) (int, any, error) {
	var b approveBatchBody
	if err := decodeStrict(body, &b); err != nil {
		return 0, nil, err
	}
	if err := checkCount("items", len(b.Items)); err != nil {
		return 0, nil, err
	}
	ids := make([]string, len(b.Items))
	for i, it := range b.Items {
		ids[i] = it.SendID
	}
	out := make([]approval.DecisionResult, len(ids))
	keep := a.inScope(r.Context(), c, ids, out)
	items := make([]approval.ApproveItem, len(keep))
	for j, i := range keep {
		items[j] = b.Items[i]
	}
	for j, d := range a.svc.ApproveMany(r.Context(), items, c.identity) {
		out[keep[j]] = d
	}
	return http.StatusOK, decisions(out), nil
}

type reasonBody struct {
	Reason string `json:"reason"`
}

// POST /v1/sends/{send_id}/reject {"reason"}: the reason is required.
func (a *api) reject(r *http.Request, c *caller, body []byte) (int, any, error) {
	id := r.PathValue("send_id") // the Service checks it; an impossible id is simply not found
	var b reasonBody
	if err := decodeStrict(body, &b); err != nil {
		return 0, nil, err
	}
	if b.Reason == "" {
		return 0, nil, invalid("reason", "required", "say why the send is rejected")
	}
	if err := a.visible(r.Context(), c, id); err != nil {
		return 0, nil, err
	}
	rec, err := a.svc.Reject(r.Context(), id, c.identity, b.Reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}

type rejectBatchBody struct {
	SendIDs []string `json:"send_ids"`
	Reason  string   `json:"reason"`
}

// POST /v1/sends:reject {"send_ids":[...],"reason"}
func (a *api) rejectBatch(r *http.Request, c *caller, body []byte) (int, any, error) {
	var b rejectBatchBody
	if err := decodeStrict(body, &b); err != nil {
		return 0, nil, err
	}
	if err := checkCount("send_ids", len(b.SendIDs)); err != nil {
		return 0, nil, err
	}
	if b.Reason == "" {
		return 0, nil, invalid("reason", "required", "say why the sends are rejected")
	}
	out := make([]approval.DecisionResult, len(b.SendIDs))
	keep := a.inScope(r.Context(), c, b.SendIDs, out)
	ids := make([]string, len(keep))
	for j, i := range keep {
		ids[j] = b.SendIDs[i]
	}
	for j, d := range a.svc.RejectMany(r.Context(), ids, c.identity, b.Reason) {
		out[keep[j]] = d
	}
	return http.StatusOK, decisions(out), nil
}

func decisions(rs []approval.DecisionResult) results {
	out := make([]itemResult, len(rs))
	for i, d := range rs {
		out[i] = itemOf(d.SendID, http.StatusOK, d.Record, d.Err)
	}
	return results{Results: out}
}

// POST /v1/sends/{send_id}/cancel, body {"reason"} optional.
func (a *api) cancel(r *http.Request, c *caller, body []byte) (int, any, error) {
	id := r.PathValue("send_id") // the Service checks it; an impossible id is simply not found
	var b reasonBody
	if body != nil {
		if err := decodeStrict(body, &b); err != nil {
			return 0, nil, err
		}
	}
	if err := a.visible(r.Context(), c, id); err != nil {
		return 0, nil, err
	}
	rec, err := a.svc.Cancel(r.Context(), id, c.identity, b.Reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}
