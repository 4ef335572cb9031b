// Package ledger keeps the send records of sendworker in Redis: the single
// source of truth of every send's state, its approval, its attempts and its
// result. Every change of state is one atomic Lua script (never
// check-then-act across round trips), so two replicas, a crash between two
// steps, or a task that asynq runs twice can never produce two deliveries or
// a lost send.
//
// The ledger never talks to the provider and never decides policy (who may
// approve, what is warm): it enforces the state machine of tasks.State and
// records decisions with who and when.
package ledger

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

// Options configures a Ledger.
type Options struct {
	// Prefix starts every key; default "sendworker". Keys carry a hash tag
	// ({prefix}) so all of them live in one Redis Cluster slot, which the
	// multi-key scripts need.
	Prefix string
	// ResultsStream receives one entry per terminal transition; default
	// "sendworker:results".
	ResultsStream string
	// ResultsMaxLen trims the stream approximately; default 1,000,000.
	ResultsMaxLen int64
	// Retention is how long a terminal record is kept; default 30 days.
	Retention time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Errors returned by the transitions. Use errors.Is; a *StateError also
// carries the state the send is in.
var (
	ErrNotFound       = errors.New("send not found")
	ErrConflict       = errors.New("send_id already used for other content")
	ErrDigestMismatch = errors.New("digest is not the send's current digest")
	ErrSelfApproval   = errors.New("the requester cannot approve their own send")
	ErrNotPending     = errors.New("send is not pending approval")
	ErrFinal          = errors.New("send already reached a final state")
	ErrTooLate        = errors.New("send is being sent and can no longer be stopped")
	ErrStaleAttempt   = errors.New("attempt is no longer the send's current attempt")
)

// StateError is a transition refused because of the send's current state.
type StateError struct {
	Err     error // one of the sentinel errors above
	SendID  string
	Current tasks.State
}

func (e *StateError) Error() string {
	return fmt.Sprintf("send %s: %v (state %s)", e.SendID, e.Err, e.Current)
}
func (e *StateError) Unwrap() error { return e.Err }

// ConflictError is returned by Create when send_id exists with another digest.
type ConflictError struct {
	SendID         string
	ExistingDigest string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("send %s: %v (existing digest %s)", e.SendID, ErrConflict, e.ExistingDigest)
}
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Ledger is the Redis-backed store of send records.
type Ledger struct {
	rdb  redis.UniversalClient
	opts Options
}
