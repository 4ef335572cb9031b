package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sendworker/sendworker/tasks"
)

// Fields of the record hash {prefix}:send:<id>. Times are Unix milliseconds.
// Besides the fields of DESIGN.md, "metadata" holds the request's metadata
// verbatim (compact JSON) so the scripts can copy it into results, and
// "approved_note" the approver's note.
const (
	fReq              = "req"
	fMetadata         = "metadata"
	fDigest           = "digest"
	fState            = "state"
	fReason           = "reason"
	fDetail           = "detail"
	fAccount          = "account"
	fOp               = "op"
	fRequestedBy      = "requested_by"
	fCreatedMs        = "created_ms"
	fUpdatedMs        = "updated_ms"
	fDeadlineMs       = "deadline_ms"
	fSeq              = "seq"
	fApprovedBy       = "approved_by"
	fApprovedMs       = "approved_ms"
	fApprovedDigest   = "approved_digest"
	fApprovedNote     = "approved_note"
	fDecidedBy        = "decided_by"
	fDecidedMs        = "decided_ms"
	fDecisionNote     = "decision_note"
	fAttempts         = "attempts"
	fAttemptToken     = "attempt_token"
	fAttemptStartedMs = "attempt_started_ms"
	fLeaseUntilMs     = "lease_until_ms"
	fGen              = "gen"
	fWaitUntilMs      = "wait_until_ms"
	fWaitReason       = "wait_reason"
	fMessageID        = "message_id"
	fChatID           = "chat_id"
	fFinishedMs       = "finished_ms"
	fDryRun           = "dry_run"
	// The attempt's reconciliation (tasks.Reconcile): the watermark (JSON),
	// the absent reads, the time until which the attempt could still land,
	// the next check, and why it is undecided.
	fAttemptWatermark = "attempt_watermark"
	fReconcileAbsent  = "reconcile_absent"
	fReconcileLandsMs = "reconcile_lands_ms"
	fReconcileNextMs  = "reconcile_next_ms"
	fReconcileWhy     = "reconcile_why"
)

// stored is a decoded record hash: the public Record and the bookkeeping
// fields the Record does not show.
type stored struct {
	rec              *tasks.Record
	seq              int64
	token            string
	attemptStartedMs int64
	leaseUntilMs     int64
}

// errBadRecord marks a record hash that cannot be decoded.
var errBadRecord = errors.New("ledger: malformed record")

// The record's integer fields (Unix milliseconds, counters): decodeRecord keeps their values in
// an array at these indexes.
const (
	iCreatedMs = iota
	iUpdatedMs
	iDeadlineMs
	iSeq
	iApprovedMs
	iDecidedMs
	iAttempts
	iAttemptStartedMs
	iLeaseUntilMs
	iGen
	iWaitUntilMs
	iFinishedMs
	iReconcileAbsent
	iReconcileLandsMs
	iReconcileNextMs
	numIntFields
)

// intFields names the integer field of each index.
var intFields = [numIntFields]string{
	iCreatedMs:        fCreatedMs,
	iUpdatedMs:        fUpdatedMs,
	iDeadlineMs:       fDeadlineMs,
	iSeq:              fSeq,
	iApprovedMs:       fApprovedMs,
	iDecidedMs:        fDecidedMs,
	iAttempts:         fAttempts,
	iAttemptStartedMs: fAttemptStartedMs,
	iLeaseUntilMs:     fLeaseUntilMs,
	iGen:              fGen,
	iWaitUntilMs:      fWaitUntilMs,
	iFinishedMs:       fFinishedMs,
	iReconcileAbsent:  fReconcileAbsent,
	iReconcileLandsMs: fReconcileLandsMs,
	iReconcileNextMs:  fReconcileNextMs,
}

// decodeRecord turns a record hash into a Record (without History). It never
// panics, whatever the map holds: a malformed field is an error naming it.
func decodeRecord(h map[string]string) (stored, error) {
	var s stored
	bad := func(field string, err error) (stored, error) {
		return stored{}, fmt.Errorf("%w: field %s: %v", errBadRecord, field, err)
	}
	// The integer fields, by position in intFields (0 when absent): an array, not a map, since
	// every task's record is decoded at least once.
	var ints [numIntFields]int64
	for i, f := range intFields {
		v, ok := h[f]
		if !ok || v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return bad(f, fmt.Errorf("not a non-negative integer: %q", v))
		}
		ints[i] = n
	}

	body, err := joinLong(h, fReq)
	if err != nil {
		return bad(fReq, err)
	}
	var req tasks.SendRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		return bad(fReq, err)
	}
	if req.SendID == "" {
		return bad(fReq, errors.New("no send_id"))
	}
	state := tasks.State(h[fState])
	if !state.Valid() {
		return bad(fState, fmt.Errorf("unknown state %q", h[fState]))
	}
	var metadata json.RawMessage
	if m := h[fMetadata]; m != "" {
		if !json.Valid([]byte(m)) {
			return bad(fMetadata, errors.New("not JSON"))
		}
		metadata = json.RawMessage(m)
	}
	if req.AccountID == "" {
		// Create's form (storedRequest): the fields the record holds on its own are taken
		// from it. A whole request's JSON (Revise's, or a record written before) always has
		// its account and is read as it is.
		req.Operation = tasks.Operation(h[fOp])
		req.AccountID = h[fAccount]
		req.RequestedBy = h[fRequestedBy]
		if len(req.Metadata) == 0 && metadata != nil {
			req.Metadata = json.RawMessage(h[fMetadata])
		}
	}
	if ints[iUpdatedMs] == 0 {
		ints[iUpdatedMs] = ints[iCreatedMs] // Create does not write it: the record was not updated since
	}
	attempts := ints[iAttempts]
	if attempts > 1<<31 {
		return bad(fAttempts, errors.New("out of range"))
	}

	rec := &tasks.Record{
		SendID:           req.SendID,
		Request:          req,
		Digest:           h[fDigest],
		State:            state,
		Reason:           tasks.Reason(h[fReason]),
		Detail:           h[fDetail],
		CreatedAt:        msTime(ints[iCreatedMs]),
		UpdatedAt:        msTime(ints[iUpdatedMs]),
		ApprovalDeadline: msTime(ints[iDeadlineMs]),
		Attempts:         int(attempts),
		Gen:              ints[iGen],
	}
	rev, err := revisionOf(h)
	if err != nil {
		return bad(fRevision, err)
	}
	rec.Revision = rev
	rec.RevisedBy = h[fRevisedBy]
	if by := h[fApprovedBy]; by != "" {
		rec.Approval = &tasks.Decision{By: by, At: msTime(ints[iApprovedMs]), Digest: h[fApprovedDigest], Note: h[fApprovedNote]}
	}
	if by := h[fDecidedBy]; by != "" {
		rec.Decision = &tasks.Decision{By: by, At: msTime(ints[iDecidedMs]), Note: h[fDecisionNote]}
	}
	if state == tasks.StateWaiting && h[fWaitReason] != "" {
		rec.Wait = &tasks.Wait{Until: msTime(ints[iWaitUntilMs]), Reason: tasks.Reason(h[fWaitReason])}
	}
	if state == tasks.StateSending {
		rc := &tasks.Reconcile{
			AttemptStartedAt: msTime(ints[iAttemptStartedMs]),
			AbsentReads:      int(min(ints[iReconcileAbsent], 1<<31)),
			LandsUntil:       msTime(ints[iReconcileLandsMs]),
			NextCheck:        msTime(ints[iReconcileNextMs]),
			Why:              h[fReconcileWhy],
		}
		if wm := h[fAttemptWatermark]; wm != "" {
			rc.Watermark = &tasks.Watermark{}
			if err := json.Unmarshal([]byte(wm), rc.Watermark); err != nil {
				return bad(fAttemptWatermark, err)
			}
		}
		rec.Reconcile = rc
	}
	if state.Terminal() {
		rec.Result = &tasks.Result{
			SendID:     req.SendID,
			Operation:  tasks.Operation(h[fOp]),
			AccountID:  h[fAccount],
			State:      state,
			Reason:     rec.Reason,
			MessageID:  h[fMessageID],
			ChatID:     h[fChatID],
			Attempts:   rec.Attempts,
			ApprovedBy: h[fApprovedBy],
			FinishedAt: msTime(ints[iFinishedMs]),
			DryRun:     h[fDryRun] == "1",
			Metadata:   metadata,
			Revision:   rec.Revision,
			RevisedBy:  rec.RevisedBy,
		}
	}
	s.rec = rec
	s.seq = ints[iSeq]
	s.token = h[fAttemptToken]
	s.attemptStartedMs = ints[iAttemptStartedMs]
	s.leaseUntilMs = ints[iLeaseUntilMs]
	return s, nil
}

// storedRequest is the request JSON Create stores (field req): req's JSON without the fields
// the record also holds and never rewrites, which decodeRecord takes back from the record:
// operation (op), account_id (account), requested_by, and metadata unless the record's copy
// (metadata: req's compacted JSON) is not byte for byte what req's JSON holds (it
// escapes <, > and & as json.Marshal does). What is left is the send_id and the content
// (chat, text, recipients, attachments, scheduling). The chat id stays: the record's chat_id is
// the chat the send went to once it ends (a chats_create's new chat, the chat of a message
// found by its id), not always the one requested.
func storedRequest(req *tasks.SendRequest, metadata string) ([]byte, error) {
	r := *req
	r.Operation, r.AccountID, r.RequestedBy = "", "", ""
	if len(req.Metadata) > 0 {
		if m, err := json.Marshal(req.Metadata); err == nil && string(m) == metadata {
			r.Metadata = nil
		}
	}
	body, err := json.Marshal(&r)
	if err != nil {
		return nil, err
	}
	// operation and account_id are always marshaled, right after send_id: drop them (empty
	// here). Were the struct's order to change, they would stay, empty, and decode the same.
	id, err := json.Marshal(r.SendID)
	if err != nil {
		return nil, err
	}
	head := `{"send_id":` + string(id)
	if rest, ok := bytes.CutPrefix(body, []byte(head+`,"operation":"","account_id":""`)); ok {
		body = append([]byte(head), rest...)
	}
	return body, nil
}

// longChunkMax is the most chunks a long value is kept in (put_long in
// lua/lib.lua: LONG_MAX / LONG).
const longChunkMax = 1024 / 64

// joinLong returns the value of field name as put_long stored it: whole, or
// in chunks name, name.1, ... whose count is name.n.
func joinLong(h map[string]string, name string) (string, error) {
	count, ok := h[name+".n"]
	if !ok {
		return h[name], nil
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 2 || n > longChunkMax {
		return "", fmt.Errorf("chunk count %q", count)
	}
	var b strings.Builder
	b.WriteString(h[name])
	for i := 1; i < n; i++ {
		c, ok := h[name+"."+strconv.Itoa(i)]
		if !ok {
			return "", fmt.Errorf("chunk %d of %d missing", i, n)
		}
		b.WriteString(c)
	}
	return b.String(), nil
}

// createdDetail is the detail of a send's first event.
const createdDetail = "enqueued"

// decodeHistory decodes the JSON events of rec's history list, after the
// event of its creation. Create stores no event (a pending send then has no
// history list at all, the biggest part of its memory after the record): the
// record's created_ms and requester say all it would. A list written before
// that, which starts with the creation event, is shown as it is.
func decodeHistory(rec *tasks.Record, items []string) ([]tasks.Event, error) {
	events := make([]tasks.Event, 0, len(items)+1)
	for i, item := range items {
		var ev tasks.Event
		if err := json.Unmarshal([]byte(item), &ev); err != nil {
			return nil, fmt.Errorf("%w: history[%d]: %v", errBadRecord, i, err)
		}
		events = append(events, ev)
	}
	if len(events) > 0 && events[0].State == tasks.StatePendingApproval && events[0].Detail == createdDetail {
		return events, nil
	}
	created := tasks.Event{At: rec.CreatedAt, State: tasks.StatePendingApproval, By: rec.Request.RequestedBy,
		Detail: createdDetail}
	return append([]tasks.Event{created}, events...), nil
}
