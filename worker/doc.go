// Package worker is the asynq server and handler that perform approved WhatsApp sends: once,
// warm-only, and with every result written back.
//
// A task is a pointer (send_id, digest, release generation) to a ledger record; the handler
// never trusts it beyond that. It also names the send's account, a hint that lets the record
// and the account's breaker be read in one round trip; the hint counts only when it is the
// record's account. Each execution, first or not, goes through the same stages:
//
//	load the record (and the account's breaker) → send window → account breaker (Redis, shared by the replicas) →
//	rate-limit slot (before any provider read) → guards (account health, warm recipient,
//	contact replied, attachments) → wait for a near slot → global request rate →
//	ledger.BeginAttempt (atomic re-check of approval, generation, pause and opt-outs) → one
//	provider call → ledger.End / Defer
//
// Provider reads are paced by the provider client itself (provider.Options.Pacer, the limiter's
// WaitGlobal as the app wires it), like every provider request of the process; the global
// request rate stage waits for the sending call's turn before BeginAttempt, so that no wait runs
// with an attempt lease, and the call then goes out with provider.WithoutPacing.
//
// A send deferred for its slot costs one limiter call and no provider read: it comes back
// SlotLead before its slot, reads the provider then, and sends at its slot. An account that
// turns unhealthy trips its breaker (breaker.go): its sends wait without attempts, one probe per
// AccountHealthTTL across replicas, and the results stream gets account_breaker_open/closed
// events.
//
// A redelivered or duplicated task meets the ledger's attempt lease: a live lease means "come
// back later", an expired one means "reconcile against the chat before anything else".
//
// A failed provider call or attachment fetch is decided in one place (classify.go): classify
// maps the phase that failed (account, chat, chats, messages, attachments, sending call), the
// operation and the error to a decision, a plain value with the outcome and its side effects
// (penalize the account after a 429, count an account-level refusal toward the breaker, end
// the call and reconcile after an unknown outcome, which only the sending call can have), and
// decided applies them.
//
// Every stage answers with a small outcome vocabulary (sent, skipped, failed, needs_review,
// wait, retry, drop) that one switch (apply) maps to ledger calls and asynq return values.
//
// What it must never do: call a sending endpoint without a fresh BeginOK for that exact digest;
// retry a sending call whose outcome is unknown without reconciling first; fail a send for a
// wait (rate limit, window, disconnected account); or log message text, tokens or keys.
package worker
