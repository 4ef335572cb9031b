package adminapi_test

import (
	"net/http"
	"testing"
)

// TestReviseRules: a correction is a new revision with a new digest; the
// old digest cannot be approved; the original requester still cannot
// approve; the editor may approve their own revision; the requester's retry
// of its original stays idempotent; a scoped approver cannot revise another
// account's send.
func TestReviseRules(t *testing.T) {
	e := newEnv(t, withScopedTokens)
	// alice (scheduler+approver) requests; approver-1 corrects.
	if r := e.do("POST", "/v1/sends", tokBoth, sendJSON("s-1", "Helo Camille")); r.status != http.StatusCreated {
		t.Fatalf("enqueue: %d %s", r.status, r.raw)
	}
	old := digestOf("s-1", "Helo Camille")

	wantStatus(t, e.do("POST", "/v1/sends/s-1/revise", tokLyon, map[string]string{"digest": old, "text": "x"}), http.StatusNotFound, "not_found")
	wantStatus(t, e.do("POST", "/v1/sends/s-1/revise", tokSched, map[string]string{"digest": old, "text": "x"}), http.StatusForbidden, "forbidden")
	wantStatus(t, e.do("POST", "/v1/sends/s-1/revise", tokAppr, map[string]string{"digest": digestOf("s-1", "other"), "text": "x"}), http.StatusConflict, "digest_mismatch")
	wantStatus(t, e.do("POST", "/v1/sends/s-1/revise", tokAppr, map[string]string{"digest": old, "text": ""}), http.StatusBadRequest, "invalid_request")

	r := e.do("POST", "/v1/sends/s-1/revise", tokAppr, map[string]string{"digest": old, "text": "Hello Camille"})
	wantStatus(t, r, http.StatusOK, "")
	rec := r.record(t)
	if rec.Revision != 1 || rec.RevisedBy != "approver-1" || rec.Request.Text != "Hello Camille" || rec.Digest == old || rec.Request.RequestedBy != "alice" {
		t.Fatalf("revised = %+v", rec)
	}
	if len(rec.History) < 2 || rec.History[len(rec.History)-1].Reason != "revised" || rec.History[len(rec.History)-1].By != "approver-1" {
		t.Fatalf("history = %+v", rec.History)
	}
	// The Sequencer retries its original request: the same send, not a conflict.
	if r := e.do("POST", "/v1/sends", tokBoth, sendJSON("s-1", "Helo Camille")); r.status != http.StatusOK {
		t.Fatalf("retry of the original: %d %s", r.status, r.raw)
	}
	// A second concurrent edit from the old digest loses.
	wantStatus(t, e.do("POST", "/v1/sends/s-1/revise", tokRoot, map[string]string{"digest": old, "text": "Hi"}), http.StatusConflict, "digest_mismatch")
	// The old digest cannot be approved any more; the requester cannot approve the revision.
	wantStatus(t, e.do("POST", "/v1/sends/s-1/approve", tokRoot, map[string]string{"digest": old}), http.StatusConflict, "digest_mismatch")
	wantStatus(t, e.do("POST", "/v1/sends/s-1/approve", tokBoth, map[string]string{"digest": rec.Digest}), http.StatusForbidden, "self_approval")
	// The editor approves what they wrote.
	r = e.do("POST", "/v1/sends/s-1/approve", tokAppr, map[string]string{"digest": rec.Digest})
	wantStatus(t, r, http.StatusOK, "")
	if got := r.record(t); got.Approval.By != "approver-1" || got.Approval.Digest != rec.Digest || got.Revision != 1 {
		t.Fatalf("approved = %+v", got)
	}
	wantStatus(t, e.do("POST", "/v1/sends/s-1/revise", tokAppr, map[string]string{"digest": rec.Digest, "text": "late"}), http.StatusConflict, "not_pending")
}

// TestResolveRoute: admins only; a send that does not need review is 409
// not_in_review; a bad resolution names the field. (The resolutions
// themselves are proven in ledger and console.)
func TestResolveRoute(t *testing.T) {
	e := newEnv(t, withScopedTokens)
	e.enqueue("s-1")
	wantStatus(t, e.do("POST", "/v1/sends/s-1/resolve", tokAppr, map[string]string{"resolution": "cancel"}), http.StatusForbidden, "forbidden")
	wantStatus(t, e.do("POST", "/v1/sends/s-1/resolve", tokAdmin, map[string]string{"resolution": "cancel"}), http.StatusConflict, "not_in_review")
	wantStatus(t, e.do("POST", "/v1/sends/s-1/resolve", tokAdmin, map[string]string{"resolution": "maybe"}), http.StatusBadRequest, "invalid_request")
	wantStatus(t, e.do("POST", "/v1/sends/s-1/resolve", tokLyon, map[string]string{"resolution": "cancel"}), http.StatusNotFound, "not_found")
}
