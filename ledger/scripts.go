package ledger

// Every script of the ledger is one file lua/<name>.lua, its header listing
// its KEYS, ARGV and reply, preceded at load time by the definitions of
// luaLib (lua/lib.lua: key builders, shared helpers, the terminal transition,
// iso_ms; and the constants generated from Go, luaGenerated) that the body
// uses, directly or through other definitions: see lualib.go.
//
// Every script takes the same first six ARGV (see Ledger.argv):
//
//	ARGV[1] key tag "{prefix}:"   ARGV[2] now (Unix ms)        ARGV[3] now (RFC 3339, ms precision)
//	ARGV[4] retention (ms)        ARGV[5] results stream MAXLEN ARGV[6] audit stream MAXLEN
//
// and its own arguments from ARGV[7]. Scripts that can end a send declare the
// results stream as KEYS[1]. The transitions of one send reply {code} (create:
// {"conflict", existing digest} too); Ledger.runRecord reads the send's record
// and history in the same MULTI/EXEC, right after the script.
//
// What a script costs Redis is mostly data crossing the Lua boundary (every
// field read, every reply element) and the Lua it runs, then the number of
// commands. So a script reads the record once, with one HMGET of the fields
// it uses (finish: FINISH_FIELDS), writes it with one HSET (hset/hdel keep
// the Lua copy in step for what the script reads after writing), returns no
// record, and touches an index or work-list zset only when the send's
// membership can change given its state: a send is in {p}:deadlines only while
// pending, in {p}:leases only while sending, in a held set only while waiting.
// History is trimmed only when it outgrew historyMax.
//
// The watchdog's zset {prefix}:watch (Keys.Watch) is kept by the scripts that
// move a send: a send is a member exactly while it is approved, waiting or
// sending and not held by a pause. Approve, resume, Defer, ResolveReconciled
// and the recoveries (RecoverStuck, RecoverExpiredLeases) score it at its new
// outbox time, MarkReleased at the release time, BeginAttempt (ok, reconcile)
// and EndCall at the end of the lease; held and finish remove it.
//
// {prefix}:leases (Keys.Leases) holds the sends in state sending with a lease
// not yet recovered, scored by the lease end: BeginAttempt (ok, reconcile)
// adds them, EndCall re-scores them; finish, Defer, ResolveReconciled and both
// recoveries remove them.

// createScript stores a new pending record, or answers for an existing one.
//
// KEYS, ARGV and reply: lua/create.lua.
var createScript = script("create")

// approveScript approves a pending send (or expires it if its deadline passed).
//
// KEYS, ARGV and reply: lua/approve.lua.
var approveScript = script("approve")

// stopScript rejects or cancels a send that has not started sending. A
// sending send is not stopped but gets a stop request (stop_state, stop_by,
// stop_note, stop_ms; the first request is kept, a later one changes
// nothing), a history event and an audit entry "<event>_requested": every
// script that then moves the send out of sending without a delivery
// (Defer, ResolveReconciled) or begins it again ends it as requested
// (finish_stopped); End(sent) wins, the message went out.
//
// KEYS, ARGV and reply: lua/stop.lua.
var stopScript = script("stop")

// expireScript expires pending sends whose deadline passed.
//
// KEYS, ARGV and reply: lua/expire.lua.
var expireScript = script("expire")

// dueScript lists outbox entries due now, dropping entries of sends that are
// no longer approved, waiting or sending (a sending send is in the outbox only
// when RecoverStuck re-scheduled it; its next execution reconciles).
//
// KEYS, ARGV and reply: lua/due.lua.
var dueScript = script("due")

// markReleasedScript removes outbox entries whose release generation is
// still their record's, and starts the watchdog's clock at the release. An
// entry already gone (the task began, was held or finished first) leaves the
// watch score to the script that removed it.
//
// KEYS, ARGV and reply: lua/mark_released.lua.
var markReleasedScript = script("mark_released")

// unfinishedResumesScript finds the scopes whose pause is lifted but whose
// held set still holds sends (a resume that failed half-way), and forgets the
// accounts that are not paused and hold nothing.
//
// KEYS, ARGV and reply: lua/unfinished_resumes.lua.
var unfinishedResumesScript = script("unfinished_resumes")

// pauseScript turns a kill switch on.
//
// KEYS, ARGV and reply: lua/pause.lua.
var pauseScript = script("pause")

// resumeScript turns a kill switch off (first call) and moves up to a batch
// of the scope's held sends to the outbox with a new release generation.
//
// KEYS, ARGV and reply: lua/resume.lua.
var resumeScript = script("resume")

// optOutScript adds or removes a contact on the opt-out list, under every known id of the
// person: the id given and, for a WhatsApp id, its linked id of the other form (idlink). An
// opt-out of a WhatsApp id whose other form is unknown is also kept in the unlinked set of its
// form, until a link names the other form.
//
// KEYS, ARGV and reply: lua/opt_out.lua.
var optOutScript = script("opt_out")

// linkScript records that a phone-form id and an @lid id are one person, both ways, and
// carries an opt-out of either to the other: from then on an opt-out added with one form is
// found under both, and neither is unlinked any more.
//
// KEYS, ARGV and reply: lua/link.lua.
var linkScript = script("link")

// beginScript re-checks everything at the moment of sending and starts (or
// takes over) an attempt.
//
// KEYS, ARGV and reply: lua/begin.lua.
var beginScript = leaseScriptOf("begin")

// finishScript ends a send with the worker's outcome. A sent new message
// (new_message_op) whose id another send already owns ({p}:msg:<id> names
// another send) is refused, nothing changed: one provider message is never
// attributed to two sends.
//
// KEYS, ARGV and reply: lua/finish.lua.
var finishScript = script("finish")

// deferScript parks a send in state waiting until a time, in the outbox with
// a new release generation; a send with a stop request (see stopScript) is
// ended as requested instead (the reply is ok all the same).
//
// KEYS, ARGV and reply: lua/defer.lua.
var deferScript = script("defer")

// resolveScript gives a reconciled attempt back: the message clearly did not
// go out, so the send is approved again (same gen). A safety-net outbox entry
// at the end of the reconciler's lease re-releases it (same gen, so the same
// asynq TaskID) should the caller die before its next BeginAttempt. A send
// with a stop request (see stopScript) is ended as requested instead (reply
// ok all the same).
//
// KEYS, ARGV and reply: lua/resolve.lua.
var resolveScript = script("resolve")

// endCallScript: the owner of the current attempt declares its sending call
// over with the outcome unknown. The lease ends at reconcile at (never later
// than it did), so a BeginAttempt from then on reconciles, and the watch (when
// not in the outbox) and {p}:leases (when a member) follow the new lease end.
//
// KEYS, ARGV and reply: lua/end_call.lua.
var endCallScript = leaseScriptOf("end_call")

// reconcileLaterScript: the execution reconciling the current attempt found
// it undecided (the message is absent but could still land); the attempt stays
// sending, its lease now ends at the next check (later or sooner than it did),
// and the record says why and when.
//
// KEYS, ARGV and reply: lua/reconcile_later.lua.
var reconcileLaterScript = leaseScriptOf("reconcile_later")

// recoverScript is the watchdog (see RecoverStuck): it re-schedules the
// watched sends more than a grace late that nothing will move any more.
//
// KEYS, ARGV and reply: lua/recover.lua.
var recoverScript = leaseScriptOf("recover")

// expiredLeasesScript recovers the sending sends whose lease ended more than
// a grace ago (see RecoverExpiredLeases), as recoverScript recovers them.
//
// KEYS, ARGV and reply: lua/expired_leases.lua.
var expiredLeasesScript = leaseScriptOf("expired_leases")

// isoScript formats ARGV[7..] (ms) with iso_ms, for TestISOMatchesLua.
//
// KEYS, ARGV and reply: lua/iso.lua.
var isoScript = script("iso")

// trimScript removes the index entries of records finished before a cutoff
// (and the records, should they still exist).
//
// KEYS, ARGV and reply: lua/trim.lua.
var trimScript = script("trim")

// dropDanglingScript removes index entries whose record no longer exists.
//
// KEYS, ARGV and reply: lua/drop_dangling.lua.
var dropDanglingScript = script("drop_dangling")

// keysScript returns the Lua-built key names, for TestKeysMatchLua.
//
// KEYS, ARGV and reply: lua/keys.lua.
var keysScript = script("keys")
