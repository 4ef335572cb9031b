package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/sendworker/sendworker/tasks"
)

// Revisions.
//
// An approver may correct a pending send before approving it. The
// correction is a new revision of the same send: the stored request and its
// digest are replaced in one script, only if the digest is still the one the
// editor saw, so the old digest can no longer be approved (Approve compares
// with the record's digest) and two concurrent edits cannot both win. The
// record keeps who wrote the latest revision (revised_by) and its number
// (revision, 0 for the original), the result written back carries them, the
// history and the audit stream say who edited. The original digest is kept
// (orig_digest) so the Sequencer's retry of its original request stays
// idempotent (Create answers exists, not conflict). The requester is never
// changed: the no-self-approval rule keeps refusing the original requester,
// and lets the editor approve what they wrote (they signed off what they saw).

// Record fields of revisions.
const (
	fRevision   = "revision"
	fRevisedBy  = "revised_by"
	fOrigDigest = "orig_digest"
)

// reviseScript replaces the request of a pending send.
//
// KEYS, ARGV and reply: lua/revise.lua.
var reviseScript = script("revise")

// Revise stores req (already validated, with its digest) as a new revision
// of the pending send sendID, if the send's digest is still shown (else
// ErrDigestMismatch: someone changed it meanwhile); a send no longer pending
// is *StateError{ErrNotPending}.
func (l *Ledger) Revise(ctx context.Context, sendID, shown string, req *tasks.SendRequest, digest, by string) (*tasks.Record, error) {
	if by == "" || digest == "" || req == nil || req.SendID != sendID {
		return nil, errors.New("ledger: revise: editor, digest and the send's request are required")
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("ledger: revise: %w", err)
	}
	r, err := l.runRecord(ctx, reviseScript, sendID, []string{l.keys.Send(sendID)}, sendID, shown, digest, body, by)
	return recordOrError(r, err, sendID)
}

func revisionOf(h map[string]string) (int, error) {
	v := h[fRevision]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errors.New("not a revision number")
	}
	return n, nil
}
