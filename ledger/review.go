package ledger

import (
	"context"
	"errors"

	"github.com/sendworker/sendworker/tasks"
)

// Resolving a send that needs review.
//
// A needs_review send is one whose last attempt may or may not have been
// delivered. Nothing sends it again by itself. An admin who looked at the
// chat resolves it, in one script each:
//
//   - sent: the admin picks the chat's message that is this send; it must
//     not be claimed by another send. The send ends sent (reason
//     marked_sent) with that message id, and a new result is written.
//   - canceled: it ends canceled, a new result is written.
//   - not sent: it goes back to approved with a new release generation, so
//     it is released and attempted again (the admin confirmed that it did
//     not go out). Its retention clock stops; the history says who decided.
//
// The needs_review entry of the finished set is removed in every case.

// Resolution is an admin's finding on a send that needs review.
type Resolution string

// Resolutions.
const (
	ResolveSent    Resolution = "sent"
	ResolveNotSent Resolution = "not_sent"
	ResolveCancel  Resolution = "cancel"
)

// ErrNotInReview is a resolution of a send that is not in needs_review.
var ErrNotInReview = errors.New("ledger: the send does not need review")

// resolveReviewScript resolves a needs_review send.
//
// KEYS, ARGV and reply: lua/resolve_review.lua.
var resolveReviewScript = script("resolve_review")

// ResolveReview records an admin's finding on a needs_review send (see
// above). messageID is required for ResolveSent. A send not in needs_review
// is *StateError{ErrNotInReview}; a message claimed by another send
// *StateError{ErrMessageClaimed}.
func (l *Ledger) ResolveReview(ctx context.Context, sendID string, res Resolution, messageID, by, note string) (*tasks.Record, error) {
	switch {
	case by == "":
		return nil, errors.New("ledger: resolve: the admin's identity is required")
	case res != ResolveSent && res != ResolveNotSent && res != ResolveCancel:
		return nil, errors.New("ledger: resolve: unknown resolution")
	case res == ResolveSent && messageID == "":
		return nil, errors.New("ledger: resolve: the message id is required to mark a send sent")
	}
	r, err := l.runRecord(ctx, resolveReviewScript, sendID, []string{l.opts.ResultsStream, l.keys.Send(sendID)},
		sendID, string(res), messageID, by, note)
	if err == nil && r.code == "not_in_review" {
		var current tasks.State
		if r.st.rec != nil {
			current = r.st.rec.State
		}
		return nil, &StateError{Err: ErrNotInReview, SendID: sendID, Current: current}
	}
	return recordOrError(r, err, sendID)
}
