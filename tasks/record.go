package tasks

import (
	"encoding/json"
	"time"
)

// Record is everything known about one send: what was asked, what was
// approved, where it is now and how it ended. The approval stage and the
// worker change it only through the ledger's atomic transitions; the admin
// API and sendctl show it as it is.
type Record struct {
	SendID    string      `json:"send_id"`
	Request   SendRequest `json:"request"`
	Digest    string      `json:"digest"`
	State     State       `json:"state"`
	Reason    Reason      `json:"reason,omitempty"`
	Detail    string      `json:"detail,omitempty"` // human-readable, never message text or secrets
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
	// ApprovalDeadline is when a still-pending send expires.
	ApprovalDeadline time.Time `json:"approval_deadline"`

	// Revision counts the corrections of the request before approval (0:
	// the requester's original); RevisedBy wrote the latest one.
	Revision  int    `json:"revision,omitempty"`
	RevisedBy string `json:"revised_by,omitempty"`

	Approval *Decision `json:"approval,omitempty"` // who approved, when, which digest
	Decision *Decision `json:"decision,omitempty"` // who rejected or canceled, when, why

	Attempts int `json:"attempts"`
	// Gen is the current release generation. Every (re)scheduling of the
	// send into the outbox increments it; a task whose payload carries
	// another gen is stale and must be dropped.
	Gen int64 `json:"gen"`
	// Wait says why and until when a send in state waiting waits.
	Wait *Wait `json:"wait,omitempty"`
	// Result is set on every terminal state.
	Result *Result `json:"result,omitempty"`
	// Reconcile is set while the send is sending: what its attempt is known
	// by, and, once its outcome is unknown, why it is undecided and when it
	// is checked next.
	Reconcile *Reconcile `json:"reconcile,omitempty"`
	// History lists every transition, oldest first.
	History []Event `json:"history,omitempty"`
}

// Reconcile is the state of an attempt whose outcome may have to be decided
// from the chat (see DESIGN.md, "At most once").
type Reconcile struct {
	// AttemptStartedAt is when the attempt began, on Redis's clock.
	AttemptStartedAt time.Time `json:"attempt_started_at"`
	// Watermark is the chat's newest message before the sending call, as
	// the provider showed it: only messages after it can be the attempt's.
	Watermark *Watermark `json:"watermark,omitempty"`
	// AbsentReads counts the reads of the chat that did not find the message.
	AbsentReads int `json:"absent_reads,omitempty"`
	// LandsUntil is the time (Redis's clock) until which the provider could
	// still store the message: before it, absence proves nothing.
	LandsUntil time.Time `json:"lands_until,omitzero"`
	// NextCheck is when the chat is read again (Redis's clock).
	NextCheck time.Time `json:"next_check,omitzero"`
	// Why says why the send is still undecided.
	Why string `json:"why,omitempty"`
}

// Watermark is the newest message of a chat as the provider listed it right
// before a sending call, on the provider's own clock. MessageID and At are
// empty for a chat without messages.
type Watermark struct {
	ChatID    string    `json:"chat_id"`
	MessageID string    `json:"message_id,omitempty"`
	At        time.Time `json:"at,omitzero"`
}

// Decision is a human decision on a send.
type Decision struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Digest string    `json:"digest,omitempty"`
	Note   string    `json:"note,omitempty"`
}

// Wait explains a send in state waiting.
type Wait struct {
	Until  time.Time `json:"until"`
	Reason Reason    `json:"reason"`
}

// Event is one transition in a send's history and in the audit trail.
type Event struct {
	At      time.Time `json:"at"`
	State   State     `json:"state"`
	Reason  Reason    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// Result is what the Sequencer and Unibox read when a send ends: the same
// fields in the send record, the results stream, the asynq task result and
// the webhook body.
type Result struct {
	SendID     string          `json:"send_id"`
	Operation  Operation       `json:"operation"`
	AccountID  string          `json:"account_id"`
	State      State           `json:"state"`
	Reason     Reason          `json:"reason,omitempty"`
	MessageID  string          `json:"message_id,omitempty"` // the provider's message id when sent
	ChatID     string          `json:"chat_id,omitempty"`
	Attempts   int             `json:"attempts"`
	ApprovedBy string          `json:"approved_by,omitempty"`
	FinishedAt time.Time       `json:"finished_at"`
	DryRun     bool            `json:"dry_run,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	// Revision and RevisedBy say that an approver corrected the request
	// before approving it: what went out is revision Revision, written by
	// RevisedBy (absent for the requester's original).
	Revision  int    `json:"revision,omitempty"`
	RevisedBy string `json:"revised_by,omitempty"`
}
