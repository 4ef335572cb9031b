package ledger

import "github.com/sendworker/sendworker/tasks"

// Keys builds every Redis key name of a ledger. All of them start with the
// hash tag "{prefix}:" so they share one Redis Cluster slot. The Lua twins of
// these functions are the k_* builders of lua/lib.lua; keep both in step (TestKeysMatchLua).
//
// Send ids may contain ':', so a per-send key never ends with a suffix after
// the id (the history is "history:<id>", not "send:<id>:history", which could
// be the record of a send named "<id>:history").
type Keys struct{ tag string }

// Breaker is the hash of an account's breaker (see breaker.go).
func (k Keys) Breaker(account string) string { return k.tag + "breaker:" + account }

// Inbound is the stream of provider events waiting for the inbound consumer group.
func (k Keys) Inbound() string { return k.tag + "inbound" }

// InboundLog is the capped log of the provider events received.
func (k Keys) InboundLog() string { return k.tag + "inbound:log" }

// Send is the hash of one send record.
func (k Keys) Send(id string) string { return k.tag + "send:" + id }

// History is the list of JSON tasks.Event of one send, oldest first.
func (k Keys) History(id string) string { return k.tag + "history:" + id }

// Seq is the counter giving each record its unique, increasing seq.
func (k Keys) Seq() string { return k.tag + "seq" }

// legacyAll is the zset (score seq) of every record that was created before List
// merged the state indexes: nothing adds to it any more, Trim drains it.
func (k Keys) legacyAll() string { return k.tag + "idx:all" }

// State is the zset (score seq) of the records in one state.
func (k Keys) State(s tasks.State) string { return k.tag + "idx:state:" + string(s) }

// Account is the zset (score seq) of one account's records in one state.
// States contain no ':', so the name is unambiguous even if the account id
// contains ':'.
func (k Keys) Account(account string, s tasks.State) string {
	return k.accountPrefix() + account + ":" + string(s)
}

// accountPrefix is what every Account key starts with (KnownAccounts scans
// for it).
func (k Keys) accountPrefix() string { return k.tag + "idx:acct:" }

// legacyAccountAll is the zset (score seq) of every record of one account that was
// created before List merged the state indexes: nothing adds to it any more,
// Trim drains it.
func (k Keys) legacyAccountAll(account string) string { return k.tag + "idx:acctall:" + account }

// InboundSeen marks an inbound provider event processed (dedupe key, with a
// TTL of InboundDedupeTTL).
func (k Keys) InboundSeen(key string) string { return k.tag + "inbound:seen:" + key }

// consolePrefix is what every key of the review console's session store
// starts with.
func (k Keys) consolePrefix() string { return k.tag + "console:" }

// Deadlines is the zset (score deadline ms) of pending sends.
func (k Keys) Deadlines() string { return k.tag + "deadlines" }

// Outbox is the zset (score release ms) of sends to hand to asynq.
func (k Keys) Outbox() string { return k.tag + "outbox" }

// Watch is the watchdog's zset of the sends it guards: every send in state
// approved, waiting or sending that is not held by a pause. The score is the
// time by which the send's next step must have begun: its release time while
// in the outbox (the outbox score; RecoverStuck moves an entry still there
// past grace forward to now) and once released (MarkReleased), the end of its
// lease while sending (BeginAttempt, EndCall). RecoverStuck re-schedules the
// members more than a grace late. See watchdog.go.
func (k Keys) Watch() string { return k.tag + "watch" }

// Leases is the zset (score lease end ms) of the sends in state sending that
// hold an attempt lease the watchdog has not yet recovered: BeginAttempt (ok,
// reconcile) adds them, EndCall re-scores them at the shortened lease end,
// every transition out of sending and every recovery of the send removes
// them. RecoverExpiredLeases reads it. See watchdog.go.
func (k Keys) Leases() string { return k.tag + "leases" }

// Finished is the zset (score finish ms) of terminal records, for Trim. Its
// members are finishedMember strings.
func (k Keys) Finished() string { return k.tag + "finished" }

// HeldGlobal is the set of sends parked by the global pause.
func (k Keys) HeldGlobal() string { return k.tag + "held:global" }

// HeldAccount is the set of sends parked by one account's pause.
func (k Keys) HeldAccount(account string) string { return k.tag + "held:acct:" + account }

// HeldAccounts is the set of accounts whose held set may be non-empty (added
// when a send is held by an account's pause, removed by FinishResumes once
// the account is not paused and holds nothing).
func (k Keys) HeldAccounts() string { return k.tag + "held:accounts" }

// PausedGlobal is the global kill switch (a string: who paused).
func (k Keys) PausedGlobal() string { return k.tag + "paused:global" }

// PausedAccounts is the set of paused accounts.
func (k Keys) PausedAccounts() string { return k.tag + "paused:accounts" }

// OptOut is the set of opted-out contact ids.
func (k Keys) OptOut() string { return k.tag + "optout" }

// IDLink maps each WhatsApp id of a person to their id of the other form (phone form to @lid
// and back), as learned from the provider's data.
func (k Keys) IDLink() string { return k.tag + "idlink" }

// OptOutUnlinked is the set of opted-out ids of one form ("phone" or "lid") whose other form
// is unknown: a person known only under the other form cannot be ruled out as one of them.
func (k Keys) OptOutUnlinked(form string) string { return k.tag + "optout:unlinked:" + form }

// OptOutInfo is the hash of the opt-out list's details: contact id → JSON
// OptOutEntry (reason, source, time, by, keyword). The set OptOut stays the
// list itself (what BeginAttempt checks).
func (k Keys) OptOutInfo() string { return k.tag + "optout:info" }

// Contact is the zset of the sends addressed to one contact id (a chat id or
// an attendee provider id), scored by the send's stop_if_replied_since (Unix
// ms; -1 when it has none). Create adds the send; the inbound scripts
// (inbound.go) remove the entries of sends they end or find final. Members
// may be final sends not yet removed: readers check the record.
func (k Keys) Contact(contactID string) string { return k.tag + "contact:" + contactID }

// Audit is the stream of decisions.
func (k Keys) Audit() string { return k.tag + "audit" }

// Msg maps a provider message id to the send that produced it.
func (k Keys) Msg(messageID string) string { return k.tag + "msg:" + messageID }
