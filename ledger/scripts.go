package ledger

import (
	"strconv"
	"strings"

	"github.com/sendworker/sendworker/tasks"
)

// Every script of the ledger is its own body preceded by the definitions of
// luaLib (key builders, shared helpers, the terminal transition, iso_ms) that the
// body uses, directly or through other definitions: see lualib.go.
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

// luaBase: clock, field access, index moves, history, audit.
var luaBase = `
local NOW = tonumber(ARGV[2])
-- NOW as Redis arguments take it (a Lua number is formatted on every call)
local NOW_S = ARGV[2]
local NOW_ISO = ARGV[3]
local RETENTION = ARGV[4]
local RESULTS_MAXLEN = ARGV[5]
local AUDIT_MAXLEN = ARGV[6]
local HISTORY_MAX = ` + strconv.Itoa(historyMax) + `

-- the record fields names, read with one HMGET into a table r (field =
-- value string, absent fields nil)
local function hmget(rk, names)
  local vals = redis.call('HMGET', rk, unpack(names))
  local r = {}
  for i = 1, #names do
    if vals[i] then r[names[i]] = vals[i] end
  end
  return r
end

local function get(r, f)
  return r[f] or ''
end

local function num(r, f)
  return tonumber(r[f]) or 0
end

-- a value as Redis stores it (the numbers the scripts write are integers)
local function str(v)
  if type(v) == 'number' then return string.format('%d', v) end
  return v
end

-- the send does not exist: r (read by hmget, state among its fields) has no
-- state and the key is missing (a record always has a state; EXISTS only
-- tells a malformed record from none)
local function missing(rk, r)
  return r.state == nil and redis.call('EXISTS', rk) == 0
end

-- HSET rk with the flat name/value list kv, in one command, and keep r in step
local function hset(rk, r, kv)
  for i = 2, #kv, 2 do
    kv[i] = str(kv[i])
    r[kv[i - 1]] = kv[i]
  end
  redis.call('HSET', rk, unpack(kv))
end

-- HDEL the fields of names that r holds (none: no command); r must have been
-- read with every field of names
local function hdel(rk, r, names)
  local present = {}
  for _, f in ipairs(names) do
    if r[f] then
      present[#present + 1] = f
      r[f] = nil
    end
  end
  if #present > 0 then redis.call('HDEL', rk, unpack(present)) end
end

local function is_terminal(s)
  return s == 'sent' or s == 'rejected' or s == 'expired' or s == 'canceled'
    or s == 'skipped' or s == 'failed' or s == 'needs_review'
end

-- move the send between the state indexes (global and per account)
local function set_state(id, acct, seq, from, to)
  if from == to then return end
  if from ~= '' then
    redis.call('ZREM', k_state(from), id)
    redis.call('ZREM', k_acct(acct, from), id)
  end
  redis.call('ZADD', k_state(to), seq, id)
  redis.call('ZADD', k_acct(acct, to), seq, id)
end

-- the clock of attempt leases (ms): Redis's own when LEASE_CLOCK_REDIS, so
-- that every replica judges a lease by one clock; else NOW (the caller's).
-- LEASE_CLOCK_REDIS is set by the script's build (see leaseScript).
local function lease_now()
  if LEASE_CLOCK_REDIS then
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return NOW
end

-- append a tasks.Event to the send's history, keeping the newest HISTORY_MAX
local function event(id, state, reason, by, attempt, detail)
  local ev = {at = NOW_ISO, state = state}
  if reason ~= '' then ev.reason = reason end
  if by ~= '' then ev.by = by end
  if attempt > 0 then ev.attempt = attempt end
  if detail ~= '' then ev.detail = detail end
  local hk = k_history(id)
  if redis.call('RPUSH', hk, cjson.encode(ev)) > HISTORY_MAX then
    redis.call('LTRIM', hk, -HISTORY_MAX, -1)
  end
end

-- append a decision to the audit stream; fields is a flat name/value list
-- keep in the opt-out set one marker member per WhatsApp id form ('?unlinked:phone',
-- '?unlinked:lid') while some opt-out of that form is linked to no one: a send whose
-- recipient lacks that form lists the marker among its contact ids, so BeginAttempt's
-- opt-out check refuses it if such an opt-out appears after the worker's guards ran.
local function mark_unlinked(optout)
  for _, form in ipairs({'phone', 'lid'}) do
    if redis.call('SCARD', k_optout_unlinked(form)) > 0 then
      redis.call('SADD', optout, '?unlinked:' .. form)
    else
      redis.call('SREM', optout, '?unlinked:' .. form)
    end
  end
end

-- put a contact on the opt-out set under every known id of the person: the id given and,
-- for a WhatsApp id (form 'phone' or 'lid'), its linked id of the other form; an id whose
-- other form is unknown is kept in its form's unlinked set. Returns whether the id was
-- added and the linked id (or false).
local function optout_put(optout, contact, form)
  local linked = false
  if form ~= '' then linked = redis.call('HGET', k_idlink(), contact) end
  local added = redis.call('SADD', optout, contact)
  if linked then
    redis.call('SADD', optout, linked)
  elseif form ~= '' then
    redis.call('SADD', k_optout_unlinked(form), contact)
  end
  mark_unlinked(optout)
  return added, linked
end

-- take a contact, and its linked id of the other form, off the opt-out set. Returns 1 if
-- either was on it, and the linked id (or false).
local function optout_del(optout, contact, form)
  local linked = false
  if form ~= '' then linked = redis.call('HGET', k_idlink(), contact) end
  local removed = redis.call('SREM', optout, contact)
  if form ~= '' then redis.call('SREM', k_optout_unlinked(form), contact) end
  if linked then
    removed = math.max(removed, redis.call('SREM', optout, linked))
    redis.call('SREM', k_optout_unlinked('phone'), linked)
    redis.call('SREM', k_optout_unlinked('lid'), linked)
  end
  mark_unlinked(optout)
  return removed, linked
end

local function audit(name, fields)
  local args = {'XADD', k_audit(), 'MAXLEN', '~', AUDIT_MAXLEN, '*', 'event', name, 'at', NOW_ISO}
  for i = 1, #fields do args[#args + 1] = fields[i] end
  redis.call(unpack(args))
end

-- take the send out of the held sets; only a waiting send can be in one
local function unpark(id, acct, from)
  if from ~= 'waiting' then return end
  redis.call('SREM', k_held_global(), id)
  if acct ~= '' then redis.call('SREM', k_held_acct(acct), id) end
end

-- remove id from a zset only if it is still the entry of that record (seq)
local function zrem_if(key, id, seq)
  local s = redis.call('ZSCORE', key, id)
  if s and tonumber(s) == tonumber(seq) then redis.call('ZREM', key, id) end
end
`

// luaNewMessageOps is new_message_op(op), the Lua twin of
// tasks.Operation.SendsNewMessage: only these operations produce a message
// whose id End(sent) indexes and claims. For the others (reaction, edit,
// delete) the message id is the target's; it is stored in the record and the
// result but never indexed or claimed.
var luaNewMessageOps = func() string {
	var ops []string
	for _, op := range tasks.Operations {
		if op.SendsNewMessage() {
			ops = append(ops, "['"+string(op)+"'] = true")
		}
	}
	return `
local NEW_MESSAGE_OPS = {` + strings.Join(ops, ", ") + `}
local function new_message_op(op) return NEW_MESSAGE_OPS[op] == true end
`
}()

// luaFinish: the terminal transition. Requires KEYS[1] = results stream.
var luaFinish = `
local RESULTS = KEYS[1]

-- the fields finish reads: the r given to finish is read with these (hmget)
local FINISH_FIELDS = {'state', 'account', 'seq', 'op', 'attempts', 'digest', 'message_id', 'chat_id',
  'metadata', 'dry_run', 'approved_by', 'attempt_token', 'lease_until_ms', 'wait_until_ms', 'wait_reason',
  'revision', 'revised_by'}

-- the tasks.Result JSON; strings escaped by cjson, metadata copied verbatim
local function result_json(id, rec)
  local r = {'{"send_id":', cjson.encode(id),
    ',"operation":', cjson.encode(get(rec, 'op')),
    ',"account_id":', cjson.encode(get(rec, 'account')),
    ',"state":', cjson.encode(get(rec, 'state'))}
  local function opt(name, v)
    if v ~= '' then
      r[#r + 1] = ',"' .. name .. '":'
      r[#r + 1] = cjson.encode(v)
    end
  end
  opt('reason', get(rec, 'reason'))
  opt('message_id', get(rec, 'message_id'))
  opt('chat_id', get(rec, 'chat_id'))
  r[#r + 1] = ',"attempts":' .. string.format('%d', num(rec, 'attempts'))
  opt('approved_by', get(rec, 'approved_by'))
  r[#r + 1] = ',"finished_at":' .. cjson.encode(NOW_ISO)
  if get(rec, 'dry_run') == '1' then r[#r + 1] = ',"dry_run":true' end
  local meta = get(rec, 'metadata')
  if meta ~= '' then r[#r + 1] = ',"metadata":' .. meta end
  if get(rec, 'revision') ~= '' then
    r[#r + 1] = ',"revision":' .. string.format('%d', num(rec, 'revision'))
    opt('revised_by', get(rec, 'revised_by'))
  end
  r[#r + 1] = '}'
  return table.concat(r)
end

-- finish: set the final state (and extra hash fields), move indexes, drop
-- the work-list entries the send can have in its state (deadlines while
-- pending; outbox and watch after approval, leases while sending, held sets
-- while waiting), append history, write the result, claim the message id
-- (sends of a new message only), start the retention clock. r is the record
-- read with FINISH_FIELDS; it is kept up to date. Returns the result JSON.
local function finish(id, r, state, reason, detail, extra, by)
  local rk, hk = k_send(id), k_history(id)
  local from, acct, seq = get(r, 'state'), get(r, 'account'), get(r, 'seq')
  local kv = {'state', state, 'reason', reason, 'detail', detail, 'updated_ms', NOW_S, 'finished_ms', NOW_S}
  for i = 1, #extra do kv[#kv + 1] = extra[i] end
  hset(rk, r, kv)
  hdel(rk, r, {'attempt_token', 'lease_until_ms', 'wait_until_ms', 'wait_reason'})
  set_state(id, acct, seq, from, state)
  if from == 'pending_approval' then
    redis.call('ZREM', k_deadlines(), id)
  else
    -- approved, waiting or sending: possibly in the outbox, watched unless held
    redis.call('ZREM', k_outbox(), id)
    redis.call('ZREM', k_watch(), id)
    if from == 'sending' then redis.call('ZREM', k_leases(), id) end
    unpark(id, acct, from)
  end
  redis.call('ZADD', k_finished(), NOW_S, state .. '\n' .. seq .. '\n' .. id .. '\n' .. acct)
  local attempts = num(r, 'attempts')
  event(id, state, reason, by, attempts, detail)

  local mid, chat, op = get(r, 'message_id'), get(r, 'chat_id'), get(r, 'op')
  local meta = get(r, 'metadata')
  if meta == '' then meta = '{}' end
  local result = result_json(id, r)
  local dry = 'false'
  if get(r, 'dry_run') == '1' then dry = 'true' end
  redis.call('XADD', RESULTS, 'MAXLEN', '~', RESULTS_MAXLEN, '*',
    'send_id', id, 'operation', op, 'account_id', acct,
    'state', state, 'reason', reason, 'message_id', mid, 'chat_id', chat,
    'attempts', string.format('%d', attempts), 'approved_by', get(r, 'approved_by'),
    'finished_at', NOW_ISO, 'metadata', meta, 'dry_run', dry,
    'result', result)

  if state == 'sent' and mid ~= '' and new_message_op(op) then
    if chat ~= '' then
      redis.call('SADD', k_claimed(chat), mid)
      redis.call('PEXPIRE', k_claimed(chat), RETENTION)
    end
    redis.call('SET', k_msg(mid), id, 'PX', RETENTION)
  end
  redis.call('PEXPIRE', rk, RETENTION)
  redis.call('PEXPIRE', hk, RETENTION)
  return result
end

local function expire_pending(id, r)
  finish(id, r, 'expired', 'approval_expired', '', {}, '')
  audit('expired', {'send_id', id, 'by', 'system', 'digest', get(r, 'digest'),
    'account_id', get(r, 'account')})
end

-- finish_stopped: end a not-final send that carries a stop request as the
-- requested state (canceled/rejected, the reason of the same name), as
-- stopScript would have; rk is its record key, stop a table holding the
-- request's fields (stop_state, stop_by, stop_note, stop_ms).
local function finish_stopped(id, rk, stop, detail)
  local r = hmget(rk, FINISH_FIELDS)
  local state, by, note = get(stop, 'stop_state'), get(stop, 'stop_by'), get(stop, 'stop_note')
  finish(id, r, state, state, detail,
    {'decided_by', by, 'decided_ms', get(stop, 'stop_ms'), 'decision_note', note}, by)
  audit(state, {'send_id', id, 'by', by, 'digest', get(r, 'digest'),
    'account_id', get(r, 'account'), 'note', note})
end
`

// createScript stores a new pending record, or answers for an existing one.
//
//	KEYS[1] record  KEYS[2] history
//	ARGV[7] send_id  ARGV[8] digest  ARGV[9] request JSON  ARGV[10] metadata JSON ("" if none)
//	ARGV[11] account  ARGV[12] operation  ARGV[13] requested_by  ARGV[14] deadline ms  ARGV[15] chat_id
//	ARGV[16] stop_if_replied_since ms (-1: none)  ARGV[17..] contact ids (Keys.Contact)
//
// Reply: {"created"} | {"exists"} | {"conflict", existing digest}.
var createScript = script(`
local id, digest, acct, by = ARGV[7], ARGV[8], ARGV[11], ARGV[13]
local rk = KEYS[1]
if redis.call('EXISTS', rk) == 1 then
  local existing = redis.call('HGET', rk, 'digest') or ''
  if existing == digest then return {'exists'} end
  -- a revised send: the requester's retry of its original is the same send
  if (redis.call('HGET', rk, 'orig_digest') or '') == digest then return {'exists'} end
  return {'conflict', existing}
end
local seq = str(redis.call('INCR', k_seq()))
local kv = {'HSET', rk, 'req', ARGV[9], 'digest', digest, 'state', 'pending_approval',
  'account', acct, 'op', ARGV[12], 'requested_by', by,
  'created_ms', NOW_S, 'updated_ms', NOW_S, 'deadline_ms', ARGV[14], 'seq', seq,
  'gen', '0', 'attempts', '0'}
if ARGV[10] ~= '' then kv[#kv + 1] = 'metadata'; kv[#kv + 1] = ARGV[10] end
if ARGV[15] ~= '' then kv[#kv + 1] = 'chat_id'; kv[#kv + 1] = ARGV[15] end
redis.call(unpack(kv))
redis.call('ZADD', k_all(), seq, id)
redis.call('ZADD', k_acct_all(acct), seq, id)
set_state(id, acct, seq, '', 'pending_approval')
redis.call('ZADD', k_deadlines(), ARGV[14], id)
-- the contact index (inbound.go): ARGV[16] stop_if_replied_since ms (-1: none), ARGV[17..] contact ids
for i = 17, #ARGV do
  redis.call('ZADD', k_contact(ARGV[i]), ARGV[16], id)
  redis.call('PEXPIRE', k_contact(ARGV[i]), RETENTION)
end
event(id, 'pending_approval', '', by, 0, 'enqueued')
audit('enqueued', {'send_id', id, 'by', by, 'digest', digest, 'account_id', acct})
return {'created'}
`)

// approveScript approves a pending send (or expires it if its deadline passed).
//
//	KEYS[1] results stream  KEYS[2] record
//	ARGV[7] send_id  ARGV[8] digest  ARGV[9] approver  ARGV[10] note
//
// Reply: {code}; code ok | not_found | not_pending | expired |
// digest_mismatch | self_approval.
var approveScript = script(`
local id, digest, by, note = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local rk = KEYS[2]
local r = hmget(rk, {'state', 'deadline_ms', 'digest', 'requested_by', 'gen', 'account', 'seq'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if st ~= 'pending_approval' then return {'not_pending'} end
if num(r, 'deadline_ms') <= NOW then
  expire_pending(id, hmget(rk, FINISH_FIELDS))
  return {'expired'}
end
if get(r, 'digest') ~= digest then return {'digest_mismatch'} end
if get(r, 'requested_by') == by then return {'self_approval'} end
redis.call('HSET', rk, 'state', 'approved', 'approved_by', by, 'approved_ms', NOW_S,
  'approved_digest', digest, 'approved_note', note, 'updated_ms', NOW_S, 'gen', str(num(r, 'gen') + 1))
local acct = get(r, 'account')
set_state(id, acct, get(r, 'seq'), st, 'approved')
redis.call('ZREM', k_deadlines(), id)
redis.call('ZADD', k_outbox(), NOW_S, id)
redis.call('ZADD', k_watch(), NOW_S, id)
event(id, 'approved', '', by, 0, 'approved')
audit('approved', {'send_id', id, 'by', by, 'digest', digest, 'account_id', acct, 'note', note})
return {'ok'}
`)

// stopScript rejects or cancels a send that has not started sending. A
// sending send is not stopped but gets a stop request (stop_state, stop_by,
// stop_note, stop_ms; the first request is kept, a later one changes
// nothing), a history event and an audit entry "<event>_requested": every
// script that then moves the send out of sending without a delivery
// (Defer, ResolveReconciled) or begins it again ends it as requested
// (finish_stopped); End(sent) wins, the message went out.
//
//	KEYS[1] results stream  KEYS[2] record
//	ARGV[7] send_id  ARGV[8] by  ARGV[9] note  ARGV[10] final state  ARGV[11] reason  ARGV[12] audit event
//
// Reply: {code}; code ok | not_found | final | stop_pending.
var stopScript = script(`
local id, by, note = ARGV[7], ARGV[8], ARGV[9]
local rk = KEYS[2]
local r = hmget(rk, FINISH_FIELDS)
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if st == 'sending' then
  if get(hmget(rk, {'stop_state'}), 'stop_state') == '' then
    redis.call('HSET', rk, 'stop_state', ARGV[10], 'stop_by', by, 'stop_note', note, 'stop_ms', NOW_S,
      'updated_ms', NOW_S)
    event(id, 'sending', ARGV[11], by, num(r, 'attempts'),
      ARGV[12] .. ' requested while sending: takes effect unless the message went out')
    audit(ARGV[12] .. '_requested', {'send_id', id, 'by', by, 'digest', get(r, 'digest'),
      'account_id', get(r, 'account'), 'note', note})
  end
  return {'stop_pending'}
end
finish(id, r, ARGV[10], ARGV[11], '', {'decided_by', by, 'decided_ms', NOW_S, 'decision_note', note}, by)
audit(ARGV[12], {'send_id', id, 'by', by, 'digest', get(r, 'digest'),
  'account_id', get(r, 'account'), 'note', note})
return {'ok'}
`)

// expireScript expires pending sends whose deadline passed.
//
//	KEYS[1] results stream  KEYS[2] deadlines
//	ARGV[7] limit
//
// Reply: the expired send ids.
var expireScript = script(`
local ids = redis.call('ZRANGE', KEYS[2], '-inf', NOW_S, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[7]))
local out = {}
for _, id in ipairs(ids) do
  local r = hmget(k_send(id), {'deadline_ms', unpack(FINISH_FIELDS)})
  if get(r, 'state') == 'pending_approval' and num(r, 'deadline_ms') <= NOW then
    expire_pending(id, r)
    out[#out + 1] = id
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
`)

// dueScript lists outbox entries due now, dropping entries of sends that are
// no longer approved, waiting or sending (a sending send is in the outbox only
// when RecoverStuck re-scheduled it; its next execution reconciles).
//
//	KEYS[1] outbox
//	ARGV[7] limit
//
// Reply: flat list of {send_id, gen, digest, operation, account, score ms}.
var dueScript = script(`
local due = redis.call('ZRANGE', KEYS[1], '-inf', NOW_S, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[7]), 'WITHSCORES')
local out = {}
for i = 1, #due, 2 do
  local id, score = due[i], due[i + 1]
  local r = hmget(k_send(id), {'state', 'gen', 'digest', 'op', 'account'})
  local st = get(r, 'state')
  if st == 'approved' or st == 'waiting' or st == 'sending' then
    out[#out + 1] = id
    out[#out + 1] = get(r, 'gen')
    out[#out + 1] = get(r, 'digest')
    out[#out + 1] = get(r, 'op')
    out[#out + 1] = get(r, 'account')
    out[#out + 1] = score
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', k_watch(), id)
  end
end
return out
`)

// markReleasedScript removes outbox entries whose release generation is
// still their record's, and starts the watchdog's clock at the release. An
// entry already gone (the task began, was held or finished first) leaves the
// watch score to the script that removed it.
//
//	KEYS[1] outbox  KEYS[2..] the records
//	ARGV[7..] send_id, gen pairs (one per record, in KEYS order)
//
// Reply: the number of entries removed.
var markReleasedScript = script(`
local removed = 0
for i = 2, #KEYS do
  local id, gen = ARGV[5 + 2 * i - 2], ARGV[5 + 2 * i - 1]
  local r = hmget(KEYS[i], {'gen', 'state'})
  if tonumber(get(r, 'gen')) == tonumber(gen) and redis.call('ZREM', KEYS[1], id) == 1 then
    removed = removed + 1
    local st = get(r, 'state')
    if st == 'approved' or st == 'waiting' or st == 'sending' then
      redis.call('ZADD', k_watch(), NOW_S, id)
    end
  end
end
return removed
`)

// unfinishedResumesScript finds the scopes whose pause is lifted but whose
// held set still holds sends (a resume that failed half-way), and forgets the
// accounts that are not paused and hold nothing.
//
//	KEYS[1] paused:global  KEYS[2] paused:accounts  KEYS[3] held:global  KEYS[4] held:accounts
//
// Reply: {"1" or "0" (the global scope), account ids...}.
var unfinishedResumesScript = script(`
-- every paused account is indexed before its resume, including accounts whose
-- sends were held before the index existed
local paused = redis.call('SMEMBERS', KEYS[2])
for i = 1, #paused, 500 do
  redis.call('SADD', KEYS[4], unpack(paused, i, math.min(i + 499, #paused)))
end
local out = {'0'}
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('SCARD', KEYS[3]) > 0 then out[1] = '1' end
for _, a in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('SISMEMBER', KEYS[2], a) == 0 then
    if redis.call('SCARD', k_held_acct(a)) > 0 then
      out[#out + 1] = a
    else
      redis.call('SREM', KEYS[4], a)
    end
  end
end
return out
`)

// pauseScript turns a kill switch on.
//
//	KEYS[1] paused:global (global) or paused:accounts (account)
//	ARGV[7] account ("" = global)  ARGV[8] by
//
// Reply: 1 if it was off.
var pauseScript = script(`
local acct, by = ARGV[7], ARGV[8]
local changed = 0
if acct == '' then
  if redis.call('SET', KEYS[1], by, 'NX') then changed = 1 end
else
  changed = redis.call('SADD', KEYS[1], acct)
end
if changed == 1 then
  local scope = 'global'
  if acct ~= '' then scope = 'account' end
  audit('paused', {'scope', scope, 'account_id', acct, 'by', by})
end
return changed
`)

// resumeScript turns a kill switch off (first call) and moves up to a batch
// of the scope's held sends to the outbox with a new release generation.
//
//	KEYS[1] paused:global or paused:accounts  KEYS[2] the scope's held set
//	ARGV[7] account ("" = global)  ARGV[8] by  ARGV[9] batch  ARGV[10] "1" on the first call
//
// Reply: number of sends moved, or -1 if the scope was paused again meanwhile.
var resumeScript = script(`
local acct, by = ARGV[7], ARGV[8]
local paused
if acct == '' then
  paused = redis.call('EXISTS', KEYS[1]) == 1
else
  paused = redis.call('SISMEMBER', KEYS[1], acct) == 1
end
if ARGV[10] == '1' then
  if paused then
    if acct == '' then redis.call('DEL', KEYS[1]) else redis.call('SREM', KEYS[1], acct) end
    local scope = 'global'
    if acct ~= '' then scope = 'account' end
    audit('resumed', {'scope', scope, 'account_id', acct, 'by', by})
  end
elseif paused then
  return -1
end
local ids = redis.call('SPOP', KEYS[2], tonumber(ARGV[9]))
for _, id in ipairs(ids) do
  local rk = k_send(id)
  local r = hmget(rk, {'state', 'gen'})
  if get(r, 'state') == 'waiting' then
    hset(rk, r, {'gen', num(r, 'gen') + 1, 'wait_until_ms', NOW_S, 'updated_ms', NOW_S})
    redis.call('ZADD', k_outbox(), NOW_S, id)
    redis.call('ZADD', k_watch(), NOW_S, id)
    event(id, 'waiting', 'paused', by, 0, 'released by resume')
  end
end
return #ids
`)

// optOutScript adds or removes a contact on the opt-out list, under every known id of the
// person: the id given and, for a WhatsApp id, its linked id of the other form (idlink). An
// opt-out of a WhatsApp id whose other form is unknown is also kept in the unlinked set of its
// form, until a link names the other form.
//
//	KEYS[1] optout
//	ARGV[7] contact id (normalized)  ARGV[8] by  ARGV[9] "1" add, "0" remove
//	ARGV[10] the contact's form: "phone", "lid" or "" (not a WhatsApp user id)
//
// Reply: 1 if the list changed.
var optOutScript = script(`
local contact, by, form = ARGV[7], ARGV[8], ARGV[10]
local changed, linked, name
if ARGV[9] == '1' then
  changed, linked = optout_put(KEYS[1], contact, form)
  name = 'optout_added'
else
  changed, linked = optout_del(KEYS[1], contact, form)
  name = 'optout_removed'
end
if changed == 1 then
  local fields = {'contact_id', contact, 'by', by}
  if linked then fields[#fields + 1] = 'linked_id'; fields[#fields + 1] = linked end
  audit(name, fields)
end
return changed
`)

// linkScript records that a phone-form id and an @lid id are one person, both ways, and
// carries an opt-out of either to the other: from then on an opt-out added with one form is
// found under both, and neither is unlinked any more.
//
//	KEYS[1] optout
//	ARGV[7] phone-form id  ARGV[8] @lid id (both normalized)
//
// Reply: 1 if the link is new, 0 if it was known.
var linkScript = script(`
local phone, lid = ARGV[7], ARGV[8]
if redis.call('HGET', k_idlink(), phone) == lid and redis.call('HGET', k_idlink(), lid) == phone then
  return 0
end
redis.call('HSET', k_idlink(), phone, lid, lid, phone)
redis.call('SREM', k_optout_unlinked('phone'), phone)
redis.call('SREM', k_optout_unlinked('lid'), lid)
mark_unlinked(KEYS[1])
local p = redis.call('SISMEMBER', KEYS[1], phone)
local l = redis.call('SISMEMBER', KEYS[1], lid)
if p ~= l then
  redis.call('SADD', KEYS[1], phone, lid)
  local from, to = phone, lid
  if l == 1 then from, to = lid, phone end
  audit('optout_linked', {'contact_id', from, 'linked_id', to})
end
return 1
`)

// beginScript re-checks everything at the moment of sending and starts (or
// takes over) an attempt.
//
//	KEYS[1] results stream  KEYS[2] record
//	ARGV[7] send_id  ARGV[8] gen  ARGV[9] digest  ARGV[10] token  ARGV[11] lease ms
//	ARGV[12] "1" = the caller expects a send in state sending (else stale)
//	ARGV[13] the attempt's watermark (JSON, "" = none)  ARGV[14..] contact ids
//
// An approved or waiting send with a stop request (see stopScript) is ended
// as requested instead: reply final.
//
// A new attempt's start is on the lease clock (Redis's own, see lease_now),
// like its lease: how long ago an attempt began is judged on one clock
// whichever replica asks. It stores the watermark and clears the previous
// attempt's reconciliation fields.
//
// Reply: {code[, ...]}; code ok | not_found | final | stale | held |
// opted_out | in_flight | reconcile. ok and reconcile add the attempt
// number, its start (ms) and the lease end (ms); in_flight adds the lease
// end (ms).
var beginScript = leaseScriptOf(`
local id, digest, token, lease = ARGV[7], ARGV[9], ARGV[10], tonumber(ARGV[11])
local rk = KEYS[2]
local r = hmget(rk, {'state', 'gen', 'digest', 'approved_digest', 'account', 'seq', 'lease_until_ms', 'attempts',
  'attempt_started_ms', 'wait_until_ms', 'wait_reason', 'stop_state', 'stop_by', 'stop_note', 'stop_ms',
  'attempt_watermark', 'reconcile_absent', 'reconcile_lands_ms', 'reconcile_next_ms', 'reconcile_why'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if st == 'pending_approval' then return {'stale'} end
if num(r, 'gen') ~= tonumber(ARGV[8]) or get(r, 'digest') ~= digest
  or get(r, 'approved_digest') ~= digest then
  return {'stale'}
end
local acct, seq = get(r, 'account'), get(r, 'seq')
local lnow = lease_now()
local lease_end = str(lnow + lease)
-- a caller that skipped the guards because the send was sending must not start a new attempt
if ARGV[12] == '1' and st ~= 'sending' then return {'stale'} end
if st == 'sending' then
  if num(r, 'lease_until_ms') > lnow then return {'in_flight', get(r, 'lease_until_ms')} end
  redis.call('HSET', rk, 'attempt_token', token, 'lease_until_ms', lease_end, 'updated_ms', NOW_S)
  -- the entry of a RecoverStuck release that began before MarkReleased
  redis.call('ZREM', k_outbox(), id)
  redis.call('ZADD', k_watch(), lease_end, id)
  redis.call('ZADD', k_leases(), lease_end, id)
  event(id, 'sending', '', '', num(r, 'attempts'), 'lease expired: reconciling')
  return {'reconcile', str(num(r, 'attempts')), get(r, 'attempt_started_ms'), lease_end}
end
if st ~= 'approved' and st ~= 'waiting' then return {'stale'} end
if get(r, 'stop_state') ~= '' then
  -- a stop request the send left sending with (defensive: Defer and
  -- ResolveReconciled already honour it)
  finish_stopped(id, rk, r, 'stop requested while sending')
  return {'final'}
end

local held
if redis.call('EXISTS', k_paused_global()) == 1 then
  held = k_held_global()
elseif redis.call('SISMEMBER', k_paused_accounts(), acct) == 1 then
  held = k_held_acct(acct)
  redis.call('SADD', k_held_accounts(), acct)
end
if held then
  hset(rk, r, {'state', 'waiting', 'wait_reason', 'paused', 'updated_ms', NOW_S})
  hdel(rk, r, {'wait_until_ms'})
  set_state(id, acct, seq, st, 'waiting')
  redis.call('ZREM', k_outbox(), id)
  unpark(id, acct, st)
  redis.call('SADD', held, id)
  redis.call('ZREM', k_watch(), id)
  event(id, 'waiting', 'paused', '', 0, 'held by pause')
  return {'held'}
end

if #ARGV >= 14 then
  local hits = redis.call('SMISMEMBER', k_optout(), unpack(ARGV, 14, #ARGV))
  for i = 1, #hits do
    if hits[i] == 1 then
      finish(id, hmget(rk, FINISH_FIELDS), 'skipped', 'opted_out', 'a contact is on the opt-out list', {}, '')
      return {'opted_out'}
    end
  end
end

local attempt = num(r, 'attempts') + 1
local started = str(lnow)
hset(rk, r, {'state', 'sending', 'attempt_token', token, 'attempt_started_ms', started,
  'lease_until_ms', lease_end, 'updated_ms', NOW_S, 'attempts', attempt})
hdel(rk, r, {'wait_until_ms', 'wait_reason', 'attempt_watermark', 'reconcile_absent', 'reconcile_lands_ms',
  'reconcile_next_ms', 'reconcile_why'})
if ARGV[13] ~= '' then hset(rk, r, {'attempt_watermark', ARGV[13]}) end
set_state(id, acct, seq, st, 'sending')
-- still there when the task began before MarkReleased
redis.call('ZREM', k_outbox(), id)
redis.call('ZADD', k_watch(), lease_end, id)
redis.call('ZADD', k_leases(), lease_end, id)
unpark(id, acct, st)
event(id, 'sending', '', '', attempt, 'attempt started')
return {'ok', str(attempt), started, lease_end}
`)

// finishScript ends a send with the worker's outcome. A sent new message
// (new_message_op) whose id another send already owns ({p}:msg:<id> names
// another send, or the chat's claimed set holds it) is refused, nothing
// changed: one provider message is never attributed to two sends.
//
//	KEYS[1] results stream  KEYS[2] record
//	ARGV[7] send_id  ARGV[8] token ("" = no attempt)  ARGV[9] state  ARGV[10] reason  ARGV[11] detail
//	ARGV[12] message_id  ARGV[13] chat_id  ARGV[14] dry run "1"/"0"
//
// Reply: {code}; code ok | not_found | final | stale_attempt |
// message_claimed. ok adds the result JSON and the attempts.
var finishScript = script(`
local id, token = ARGV[7], ARGV[8]
local rk = KEYS[2]
local r = hmget(rk, FINISH_FIELDS)
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if token ~= '' then
  if st ~= 'sending' or get(r, 'attempt_token') ~= token then return {'stale_attempt'} end
elseif st ~= 'approved' and st ~= 'waiting' then
  return {'stale_attempt'}
end
local mid = ARGV[12]
if ARGV[9] == 'sent' and mid ~= '' and new_message_op(get(r, 'op')) then
  local chat = ARGV[13]
  if chat == '' then chat = get(r, 'chat_id') end
  local owner = redis.call('GET', k_msg(mid))
  if (owner and owner ~= id)
    or (not owner and chat ~= '' and redis.call('SISMEMBER', k_claimed(chat), mid) == 1) then
    return {'message_claimed'}
  end
end
local extra = {'dry_run', ARGV[14]}
if ARGV[12] ~= '' then extra[#extra + 1] = 'message_id'; extra[#extra + 1] = ARGV[12] end
if ARGV[13] ~= '' then extra[#extra + 1] = 'chat_id'; extra[#extra + 1] = ARGV[13] end
return {'ok', finish(id, r, ARGV[9], ARGV[10], ARGV[11], extra, ''), str(num(r, 'attempts'))}
`)

// deferScript parks a send in state waiting until a time, in the outbox with
// a new release generation; a send with a stop request (see stopScript) is
// ended as requested instead (the reply is ok all the same).
//
//	KEYS[1] results stream  KEYS[2] record  KEYS[3] outbox
//	ARGV[7] send_id  ARGV[8] token ("" = no attempt)  ARGV[9] until ms  ARGV[10] reason  ARGV[11] until RFC 3339
//
// Reply: {code}; code ok | not_found | final | stale_attempt.
var deferScript = script(`
local id, token = ARGV[7], ARGV[8]
local rk = KEYS[2]
local r = hmget(rk, {'state', 'attempt_token', 'lease_until_ms', 'account', 'seq', 'gen',
  'stop_state', 'stop_by', 'stop_note', 'stop_ms'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if token ~= '' then
  if st ~= 'sending' or get(r, 'attempt_token') ~= token then return {'stale_attempt'} end
elseif st ~= 'approved' and st ~= 'waiting' then
  return {'stale_attempt'}
end
if get(r, 'stop_state') ~= '' then
  finish_stopped(id, rk, r, 'stop requested while sending; not delivered')
  return {'ok'}
end
local acct = get(r, 'account')
hset(rk, r, {'gen', num(r, 'gen') + 1, 'state', 'waiting', 'wait_until_ms', ARGV[9], 'wait_reason', ARGV[10],
  'updated_ms', NOW_S})
hdel(rk, r, {'attempt_token', 'lease_until_ms'})
set_state(id, acct, get(r, 'seq'), st, 'waiting')
redis.call('ZADD', KEYS[3], ARGV[9], id)
redis.call('ZADD', k_watch(), ARGV[9], id)
if st == 'sending' then redis.call('ZREM', k_leases(), id) end
unpark(id, acct, st)
event(id, 'waiting', ARGV[10], '', 0, 'until ' .. ARGV[11])
return {'ok'}
`)

// resolveScript gives a reconciled attempt back: the message clearly did not
// go out, so the send is approved again (same gen). A safety-net outbox entry
// at the end of the reconciler's lease re-releases it (same gen, so the same
// asynq TaskID) should the caller die before its next BeginAttempt. A send
// with a stop request (see stopScript) is ended as requested instead (reply
// ok all the same).
//
//	KEYS[1] results stream  KEYS[2] record  KEYS[3] outbox
//	ARGV[7] send_id  ARGV[8] token
//
// Reply: {code}; code ok | not_found | final | stale_attempt.
var resolveScript = script(`
local id, token = ARGV[7], ARGV[8]
local rk = KEYS[2]
local r = hmget(rk, {'state', 'attempt_token', 'lease_until_ms', 'account', 'seq', 'attempts',
  'stop_state', 'stop_by', 'stop_note', 'stop_ms'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if st ~= 'sending' or token == '' or get(r, 'attempt_token') ~= token then
  return {'stale_attempt'}
end
if get(r, 'stop_state') ~= '' then
  finish_stopped(id, rk, r, 'stop requested while sending; reconciled: not sent')
  return {'ok'}
end
local lease_until = str(num(r, 'lease_until_ms'))
hset(rk, r, {'state', 'approved', 'updated_ms', NOW_S})
hdel(rk, r, {'attempt_token', 'lease_until_ms'})
set_state(id, get(r, 'account'), get(r, 'seq'), st, 'approved')
redis.call('ZADD', KEYS[3], lease_until, id)
redis.call('ZADD', k_watch(), lease_until, id)
redis.call('ZREM', k_leases(), id)
event(id, 'approved', '', '', num(r, 'attempts'), 'reconciled: not sent')
return {'ok'}
`)

// luaISO: iso_ms(ms), the Lua twin of isoMs (RFC 3339 UTC, milliseconds
// shown as Go's RFC3339Nano shows them); Redis's Lua has no os.date. The
// date is Howard Hinnant's civil_from_days; TestISOMatchesLua checks it.
const luaISO = `
local function iso_ms(ms)
  local secs = math.floor(ms / 1000)
  local frac = ms - secs * 1000
  local days = math.floor(secs / 86400)
  local sod = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  local s = string.format('%04d-%02d-%02dT%02d:%02d:%02d', y, m, d,
    math.floor(sod / 3600), math.floor(sod / 60) % 60, sod % 60)
  if frac > 0 then
    s = s .. (string.gsub(string.format('.%03d', frac), '0+$', ''))
  end
  return s .. 'Z'
end
`

// endCallScript: the owner of the current attempt declares its sending call
// over with the outcome unknown. The lease ends at reconcile at (never later
// than it did), so a BeginAttempt from then on reconciles, and the watch (when
// not in the outbox) and {p}:leases (when a member) follow the new lease end.
//
//	KEYS[1] record
//	ARGV[7] send_id  ARGV[8] token  ARGV[9] reconcile after ms (on the lease clock)  ARGV[10] reason
//
// Reply: {code}; code ok | not_found | final | stale_attempt.
var endCallScript = leaseScriptOf(`
local id, token = ARGV[7], ARGV[8]
local rk = KEYS[1]
local r = hmget(rk, {'state', 'attempt_token', 'lease_until_ms', 'attempts'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if st ~= 'sending' or token == '' or get(r, 'attempt_token') ~= token then
  return {'stale_attempt'}
end
local lease_until = math.min(num(r, 'lease_until_ms'), lease_now() + tonumber(ARGV[9]))
local s = str(lease_until)
redis.call('HSET', rk, 'lease_until_ms', s, 'updated_ms', NOW_S)
-- a send the watchdog re-scheduled is in the outbox, not in leases: its
-- watch score is its outbox time, and it stays out of leases
if not redis.call('ZSCORE', k_outbox(), id) then redis.call('ZADD', k_watch(), s, id) end
redis.call('ZADD', k_leases(), 'XX', s, id)
event(id, 'sending', ARGV[10], '', num(r, 'attempts'), 'reconcile at ' .. iso_ms(lease_until))
return {'ok'}
`)

// reconcileLaterScript: the execution reconciling the current attempt found
// it undecided (the message is absent but could still land); the attempt stays
// sending, its lease now ends at the next check (later or sooner than it did),
// and the record says why and when.
//
//	KEYS[1] record
//	ARGV[7] send_id  ARGV[8] token  ARGV[9] next check after ms (on the lease clock)
//	ARGV[10] lands until ms (lease clock)  ARGV[11] "1" = this read found the message absent
//	ARGV[12] why  ARGV[13] reason
//
// Reply: {code[, next check ms]}; code ok | not_found | final | stale_attempt.
var reconcileLaterScript = leaseScriptOf(`
local id, token = ARGV[7], ARGV[8]
local rk = KEYS[1]
local r = hmget(rk, {'state', 'attempt_token', 'attempts', 'reconcile_absent'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if st ~= 'sending' or token == '' or get(r, 'attempt_token') ~= token then
  return {'stale_attempt'}
end
local s = str(lease_now() + tonumber(ARGV[9]))
local absent = num(r, 'reconcile_absent')
if ARGV[11] == '1' then absent = absent + 1 end
redis.call('HSET', rk, 'lease_until_ms', s, 'updated_ms', NOW_S, 'reconcile_absent', str(absent),
  'reconcile_lands_ms', ARGV[10], 'reconcile_next_ms', s, 'reconcile_why', ARGV[12])
if not redis.call('ZSCORE', k_outbox(), id) then redis.call('ZADD', k_watch(), s, id) end
redis.call('ZADD', k_leases(), 'XX', s, id)
event(id, 'sending', ARGV[13], '', num(r, 'attempts'), ARGV[12])
return {'ok', s}
`)

// recoverScript is the watchdog (see RecoverStuck): it re-schedules the
// watched sends more than a grace late that nothing will move any more.
//
//	KEYS[1] watch  KEYS[2] outbox
//	ARGV[7] grace ms  ARGV[8] limit
//
// Every watch entry it reads leaves the range it reads (removed, or scored at
// or after now - grace), so a batch never starves the entries behind it.
//
// Reply: the re-scheduled send ids.
var recoverScript = leaseScriptOf(`
local cutoff = NOW - tonumber(ARGV[7])
-- leases are judged on their own clock
local lease_cutoff = lease_now() - tonumber(ARGV[7])
local late = redis.call('ZRANGE', KEYS[1], '-inf', string.format('(%d', cutoff), 'BYSCORE',
  'LIMIT', 0, tonumber(ARGV[8]), 'WITHSCORES')
local out = {}
for i = 1, #late, 2 do
  local id, since = late[i], tonumber(late[i + 1])
  local rk = k_send(id)
  local r = hmget(rk, {'state', 'account', 'lease_until_ms', 'gen', 'attempts'})
  local st, acct = get(r, 'state'), get(r, 'account')
  if st ~= 'approved' and st ~= 'waiting' and st ~= 'sending' then
    -- final, pending or gone: not watched
    redis.call('ZREM', KEYS[1], id)
  elseif st == 'waiting' and (redis.call('SISMEMBER', k_held_global(), id) == 1
    or (acct ~= '' and redis.call('SISMEMBER', k_held_acct(acct), id) == 1)) then
    -- held by a pause (only a waiting send can be): resume releases it
    redis.call('ZREM', KEYS[1], id)
  else
    local queued = redis.call('ZSCORE', KEYS[2], id)
    if queued then
      -- in the outbox: the releaser's backlog, not a lost task; look again later
      redis.call('ZADD', KEYS[1], math.max(tonumber(queued), NOW), id)
    elseif st == 'sending' and num(r, 'lease_until_ms') >= lease_cutoff then
      -- the lease has not been over for a grace yet (scored out of the range read, even when
      -- the lease clock is behind NOW)
      redis.call('ZADD', KEYS[1], math.max(num(r, 'lease_until_ms'), cutoff), id)
    else
      hset(rk, r, {'gen', num(r, 'gen') + 1, 'updated_ms', NOW_S})
      redis.call('ZADD', KEYS[2], NOW_S, id)
      redis.call('ZADD', KEYS[1], NOW_S, id)
      local attempt = 0
      if st == 'sending' then
        redis.call('ZREM', k_leases(), id)
        attempt = num(r, 'attempts')
      end
      event(id, st, '', '` + RecoveredBy + `', attempt, 'recovered: no progress since ' .. iso_ms(since))
      out[#out + 1] = id
    end
  end
end
return out
`)

// expiredLeasesScript recovers the sending sends whose lease ended more than
// a grace ago (see RecoverExpiredLeases), as recoverScript recovers them.
//
//	KEYS[1] leases  KEYS[2] outbox
//	ARGV[7] grace ms  ARGV[8] limit
//
// Every entry it reads leaves the range it reads (removed, or scored at the
// record's lease end, which is at or after now - grace), so a batch never
// starves the entries behind it. It touches no send that is not sending.
//
// Reply: the recovered send ids.
var expiredLeasesScript = leaseScriptOf(`
local cutoff = lease_now() - tonumber(ARGV[7])
local late = redis.call('ZRANGE', KEYS[1], '-inf', string.format('(%d', cutoff), 'BYSCORE',
  'LIMIT', 0, tonumber(ARGV[8]))
local out = {}
for _, id in ipairs(late) do
  local rk = k_send(id)
  local r = hmget(rk, {'state', 'lease_until_ms', 'gen', 'attempts'})
  local lease_until = num(r, 'lease_until_ms')
  if get(r, 'state') ~= 'sending' or lease_until == 0
    or redis.call('ZSCORE', KEYS[2], id) then
    -- not sending, no lease, or already re-scheduled: not this script's
    redis.call('ZREM', KEYS[1], id)
  elseif lease_until >= cutoff then
    -- the lease was renewed (a takeover): track its real end
    redis.call('ZADD', KEYS[1], lease_until, id)
  else
    hset(rk, r, {'gen', num(r, 'gen') + 1, 'updated_ms', NOW_S})
    redis.call('ZADD', KEYS[2], NOW_S, id)
    redis.call('ZADD', k_watch(), NOW_S, id)
    redis.call('ZREM', KEYS[1], id)
    event(id, 'sending', '', '` + RecoveredBy + `', num(r, 'attempts'),
      'recovered: lease expired at ' .. iso_ms(lease_until))
    out[#out + 1] = id
  end
end
return out
`)

// isoScript formats ARGV[7..] (ms) with iso_ms, for TestISOMatchesLua.
//
//	KEYS[1] any key of the ledger (routing only)
var isoScript = script(`
local out = {}
for i = 7, #ARGV do out[#out + 1] = iso_ms(tonumber(ARGV[i])) end
return out
`)

// trimScript removes the index entries of records finished before a cutoff
// (and the records, should they still exist).
//
//	KEYS[1] finished
//	ARGV[7] cutoff ms  ARGV[8] batch
//
// Reply: number of finished entries handled.
var trimScript = script(`
local members = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[7], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[8]))
for _, m in ipairs(members) do
  local a = string.find(m, '\n', 1, true)
  local b = a and string.find(m, '\n', a + 1, true)
  local c = b and string.find(m, '\n', b + 1, true)
  if c then
    local state, seq = string.sub(m, 1, a - 1), string.sub(m, a + 1, b - 1)
    local id, acct = string.sub(m, b + 1, c - 1), string.sub(m, c + 1)
    zrem_if(k_state(state), id, seq)
    zrem_if(k_acct(acct, state), id, seq)
    zrem_if(k_all(), id, seq)
    zrem_if(k_acct_all(acct), id, seq)
    if redis.call('HGET', k_send(id), 'seq') == seq then
      redis.call('DEL', k_send(id), k_history(id))
    end
  end
  redis.call('ZREM', KEYS[1], m)
end
return #members
`)

// dropDanglingScript removes index entries whose record no longer exists.
//
//	KEYS[1] index zset
//	ARGV[7..] pairs of send_id, seq
//
// Reply: number removed.
var dropDanglingScript = script(`
local n = 0
for i = 7, #ARGV - 1, 2 do
  local id, seq = ARGV[i], ARGV[i + 1]
  if redis.call('EXISTS', k_send(id)) == 0 then
    local s = redis.call('ZSCORE', KEYS[1], id)
    if s and tonumber(s) == tonumber(seq) then
      n = n + redis.call('ZREM', KEYS[1], id)
    end
  end
end
return n
`)

// keysScript returns the Lua-built key names, for TestKeysMatchLua.
//
//	KEYS[1] any key of the ledger (routing only)
//	ARGV[7] id  ARGV[8] account  ARGV[9] state  ARGV[10] chat  ARGV[11] message id
var keysScript = script(`
local id, acct, st = ARGV[7], ARGV[8], ARGV[9]
return {k_send(id), k_history(id), k_seq(), k_all(), k_state(st), k_acct(acct, st), k_acct_all(acct),
  k_deadlines(), k_outbox(), k_watch(), k_leases(), k_finished(), k_held_global(), k_held_acct(acct), k_paused_global(),
  k_paused_accounts(), k_optout(), k_audit(), k_claimed(ARGV[10]), k_msg(ARGV[11]), k_held_accounts()}
`)
