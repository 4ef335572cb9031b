package tasks

// State is where a send is in its lifecycle:
//
//	pending_approval → approved → [waiting] → sending → sent
//
// or one of the terminal states rejected, expired, canceled, skipped, failed
// and needs_review.
type State string

// The states of the product contract (docs/PRODUCT.md).
const (
	StatePendingApproval State = "pending_approval"
	StateApproved        State = "approved"
	StateWaiting         State = "waiting"
	StateSending         State = "sending"
	StateSent            State = "sent"
	StateRejected        State = "rejected"
	StateExpired         State = "expired"
	StateCanceled        State = "canceled"
	StateSkipped         State = "skipped"
	StateFailed          State = "failed"
	StateNeedsReview     State = "needs_review"
)

// States lists every state in lifecycle order.
var States = []State{
	StatePendingApproval, StateApproved, StateWaiting, StateSending, StateSent,
	StateRejected, StateExpired, StateCanceled, StateSkipped, StateFailed, StateNeedsReview,
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, known := range States {
		if s == known {
			return true
		}
	}
	return false
}

// Terminal reports whether no further transition can happen from s.
func (s State) Terminal() bool {
	switch s {
	case StateSent, StateRejected, StateExpired, StateCanceled, StateSkipped, StateFailed, StateNeedsReview:
		return true
	}
	return false
}

// Reason is a stable snake_case code saying why a send ended (or waits) the
// way it did. The Sequencer and Unibox match on these codes, so they never
// change meaning; new ones may be added.
type Reason string

// Reason codes. The README documents each one.
const (
	// Refusals of the warm-only guard.
	ReasonColdRecipient   Reason = "cold_recipient"    // recipient is not an existing contact of the account
	ReasonChatNotFound    Reason = "chat_not_found"    // the chat does not exist (any more)
	ReasonAccountMismatch Reason = "account_mismatch"  // the chat or message belongs to another account
	ReasonMessageNotFound Reason = "message_not_found" // the message to react to, edit or delete is unknown

	// What the chat or the recipient allows.
	ReasonChatReadOnly         Reason = "chat_read_only"        // the chat is read-only, or the provider refuses writes into it
	ReasonFeatureDisabled      Reason = "feature_disabled"      // the chat disables the feature (e.g. reactions)
	ReasonRecipientBlocked     Reason = "recipient_blocked"     // the provider says the recipient blocked the account
	ReasonRecipientUnreachable Reason = "recipient_unreachable" // the provider cannot reach the recipient

	// The contact's will.
	ReasonContactReplied Reason = "contact_replied" // the contact wrote after stop_if_replied_since
	ReasonOptedOut       Reason = "opted_out"       // the contact is on the opt-out list
	// ReasonIdentityUnresolved (state needs_review): the recipient is known under one WhatsApp id
	// form only and an opt-out exists under the other form that nothing links to a person: the
	// opt-out check cannot rule it out, so a human decides.
	ReasonIdentityUnresolved Reason = "identity_unresolved"

	// Human decisions and deadlines.
	ReasonRejected        Reason = "rejected"         // an approver rejected the send
	ReasonCanceled        Reason = "canceled"         // the scheduler or an admin canceled it
	ReasonMarkedSent      Reason = "marked_sent"      // an admin found the message of a send whose outcome was unknown
	ReasonMarkedNotSent   Reason = "marked_not_sent"  // an admin found that it did not go out: approved again (history only)
	ReasonApprovalExpired Reason = "approval_expired" // not approved before approval_deadline
	ReasonWindowExpired   Reason = "window_expired"   // not sent before window.not_after
	// ReasonMaxDelay: a send without window.not_after not sent within the configured maximum
	// delay after its approval (SENDWORKER_MAX_DELAY_AFTER_APPROVAL).
	ReasonMaxDelay        Reason = "max_delay_exceeded"
	ReasonDigestMismatch  Reason = "digest_mismatch"  // the approved digest is not the content's digest
	ReasonApprovalMissing Reason = "approval_missing" // executed without a valid approval record

	// Operation-specific refusals.
	ReasonEditWindowClosed   Reason = "edit_window_closed"   // edits only within 15 minutes of sending
	ReasonDeleteWindowClosed Reason = "delete_window_closed" // deletes only within the provider's window
	ReasonNotOwnMessage      Reason = "not_own_message"      // only our own messages can be edited or deleted

	// Attachments.
	ReasonAttachmentOrigin   Reason = "attachment_origin_not_allowed"
	ReasonAttachmentTooLarge Reason = "attachment_too_large"
	ReasonAttachmentMismatch Reason = "attachment_hash_mismatch"
	ReasonAttachmentFetch    Reason = "attachment_fetch_failed"

	// Provider outcomes.
	ReasonAccountDisconnected Reason = "account_disconnected" // the account cannot send (waits, then fails only if told to)
	ReasonProviderRejected    Reason = "provider_rejected"    // the provider refused the call (4xx)
	ReasonUnknownOutcome      Reason = "unknown_outcome"      // the call may or may not have been delivered and the chat cannot tell
	ReasonRetriesExhausted    Reason = "retries_exhausted"    // transient errors outlasted the retry budget

	// Input.
	ReasonInvalidPayload Reason = "invalid_payload" // the task payload or stored request is malformed

	// Not an error: dry-run mode did everything but the sending call.
	ReasonDryRun Reason = "dry_run"

	// Why a send waits (state waiting).
	ReasonWaitRateLimit   Reason = "rate_limit"
	ReasonWaitWindow      Reason = "send_window"
	ReasonWaitPaused      Reason = "paused"
	ReasonWaitAccountDown Reason = "account_unhealthy"
	ReasonWaitProvider    Reason = "provider_backoff"
	ReasonWaitInFlight    Reason = "attempt_in_flight"
	ReasonWaitReconcile   Reason = "reconcile_pending"
	// ReasonWaitTransient: deferred after a transient failure (a sending call
	// the provider certainly did not act on, an attachment that could not be
	// fetched). Unlike provider_backoff (429) it counts against the worker's
	// budget of transient attempts.
	ReasonWaitTransient Reason = "transient_error"
	// ReasonWaitReplication: an attempt's start reached fewer Redis replicas
	// than SENDWORKER_WAIT_REPLICAS asks for; no call was made. Not counted
	// against any budget: a Redis problem never fails a send.
	ReasonWaitReplication Reason = "redis_replication"
)
