package ledger

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/tasks"
)

// Every script of the ledger. Each one is luaKeys (key builders) + luaBase
// (shared helpers) [+ luaFinish (terminal transition)] + its own body.
//
// Every script takes the same first six ARGV (see Ledger.args):
//
//	ARGV[1] key tag "{prefix}:"   ARGV[2] now (Unix ms)        ARGV[3] now (RFC 3339, ms precision)
//	ARGV[4] retention (ms)        ARGV[5] results stream MAXLEN ARGV[6] audit stream MAXLEN
//
// and its own arguments from ARGV[7]. Scripts that can end a send declare the
// results stream as KEYS[1]. Replies that carry a record are
// {code, HGETALL record, LRANGE history}.
//
// The watchdog's zset {prefix}:watch (Keys.Watch) is kept by the scripts that
// move a send: a send is a member exactly while it is approved, waiting or
// sending and not held by a pause. Approve, resume, Defer, ResolveReconciled
// and the recoveries (RecoverStuck, RecoverExpiredLeases) score it at its new
// outbox time, MarkReleased at the release time, BeginAttempt (ok, reconcile)
// at the end of the lease; held and finish remove it.
//
// {prefix}:leases (Keys.Leases) holds the sends in state sending with a lease
// not yet recovered, scored by the lease end: BeginAttempt (ok, reconcile)
// adds them; finish, Defer, ResolveReconciled and both recoveries remove them.

// luaBase: clock, field access, index moves, history, audit.
var luaBase = `
local NOW = tonumber(ARGV[2])
local NOW_ISO = ARGV[3]
local RETENTION = tonumber(ARGV[4])
local RESULTS_MAXLEN = ARGV[5]
local AUDIT_MAXLEN = ARGV[6]
local HISTORY_MAX = ` + strconv.Itoa(historyMax) + `

local function field(rk, f)
  local v = redis.call('HGET', rk, f)
  if v then return v end
  return ''
end

local function numf(rk, f)
  return tonumber(field(rk, f)) or 0
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

-- append a tasks.Event to the send's history, keeping the newest HISTORY_MAX
local function event(id, state, reason, by, attempt, detail)
  local ev = {at = NOW_ISO, state = state}
  if reason ~= '' then ev.reason = reason end
  if by ~= '' then ev.by = by end
  if attempt > 0 then ev.attempt = attempt end
  if detail ~= '' then ev.detail = detail end
  local hk = k_history(id)
  redis.call('RPUSH', hk, cjson.encode(ev))
  redis.call('LTRIM', hk, -HISTORY_MAX, -1)
end

-- append a decision to the audit stream; fields is a flat name/value list
local function audit(name, fields)
  local args = {'XADD', k_audit(), 'MAXLEN', '~', AUDIT_MAXLEN, '*', 'event', name, 'at', NOW_ISO}
  for i = 1, #fields do args[#args + 1] = fields[i] end
  redis.call(unpack(args))
end

local function unpark(id, acct)
  redis.call('SREM', k_held_global(), id)
  if acct ~= '' then redis.call('SREM', k_held_acct(acct), id) end
end

-- remove id from a zset only if it is still the entry of that record (seq)
local function zrem_if(key, id, seq)
  local s = redis.call('ZSCORE', key, id)
  if s and tonumber(s) == tonumber(seq) then redis.call('ZREM', key, id) end
end

local function reply(code, id)
  return {code, redis.call('HGETALL', k_send(id)), redis.call('LRANGE', k_history(id), 0, -1)}
end
`

// luaNewMessageOps is new_message_op(op), the Lua twin of
// tasks.Operation.SendsNewMessage: only these operations produce a message
// whose id Finish(sent) indexes and claims. For the others (reaction, edit,
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
var luaFinish = luaNewMessageOps + `
local RESULTS = KEYS[1]

-- the tasks.Result JSON; strings escaped by cjson, metadata copied verbatim
local function result_json(id, rk)
  local r = {'{"send_id":', cjson.encode(id),
    ',"operation":', cjson.encode(field(rk, 'op')),
    ',"account_id":', cjson.encode(field(rk, 'account')),
    ',"state":', cjson.encode(field(rk, 'state'))}
  local function opt(name, v)
    if v ~= '' then
      r[#r + 1] = ',"' .. name .. '":'
      r[#r + 1] = cjson.encode(v)
    end
  end
  opt('reason', field(rk, 'reason'))
  opt('message_id', field(rk, 'message_id'))
  opt('chat_id', field(rk, 'chat_id'))
  r[#r + 1] = ',"attempts":' .. string.format('%d', numf(rk, 'attempts'))
  opt('approved_by', field(rk, 'approved_by'))
  r[#r + 1] = ',"finished_at":' .. cjson.encode(NOW_ISO)
  if field(rk, 'dry_run') == '1' then r[#r + 1] = ',"dry_run":true' end
  local meta = field(rk, 'metadata')
  if meta ~= '' then r[#r + 1] = ',"metadata":' .. meta end
  r[#r + 1] = '}'
  return table.concat(r)
end

-- finish: set the final state (and extra hash fields), move indexes, drop
-- every work-list entry, append history, write the result, claim the message
-- id (sends of a new message only), start the retention clock.
local function finish(id, state, reason, detail, extra, by)
  local rk, hk = k_send(id), k_history(id)
  local from, acct, seq = field(rk, 'state'), field(rk, 'account'), field(rk, 'seq')
  local args = {'HSET', rk, 'state', state, 'reason', reason, 'detail', detail,
    'updated_ms', NOW, 'finished_ms', NOW}
  for i = 1, #extra do args[#args + 1] = extra[i] end
  redis.call(unpack(args))
  redis.call('HDEL', rk, 'attempt_token', 'lease_until_ms', 'wait_until_ms', 'wait_reason')
  set_state(id, acct, seq, from, state)
  redis.call('ZREM', k_deadlines(), id)
  redis.call('ZREM', k_outbox(), id)
  redis.call('ZREM', k_watch(), id)
  redis.call('ZREM', k_leases(), id)
  unpark(id, acct)
  redis.call('ZADD', k_finished(), NOW, state .. '\n' .. seq .. '\n' .. id .. '\n' .. acct)
  local attempts = numf(rk, 'attempts')
  event(id, state, reason, by, attempts, detail)

  local mid, chat = field(rk, 'message_id'), field(rk, 'chat_id')
  local meta = field(rk, 'metadata')
  if meta == '' then meta = '{}' end
  local dry = 'false'
  if field(rk, 'dry_run') == '1' then dry = 'true' end
  redis.call('XADD', RESULTS, 'MAXLEN', '~', RESULTS_MAXLEN, '*',
    'send_id', id, 'operation', field(rk, 'op'), 'account_id', acct,
    'state', state, 'reason', reason, 'message_id', mid, 'chat_id', chat,
    'attempts', string.format('%d', attempts), 'approved_by', field(rk, 'approved_by'),
    'finished_at', NOW_ISO, 'metadata', meta, 'dry_run', dry,
    'result', result_json(id, rk))

  if state == 'sent' and mid ~= '' and new_message_op(field(rk, 'op')) then
    if chat ~= '' then
      redis.call('SADD', k_claimed(chat), mid)
      redis.call('PEXPIRE', k_claimed(chat), RETENTION)
    end
    redis.call('SET', k_msg(mid), id, 'PX', RETENTION)
  end
  redis.call('PEXPIRE', rk, RETENTION)
  redis.call('PEXPIRE', hk, RETENTION)
end

local function expire_pending(id)
  finish(id, 'expired', 'approval_expired', '', {}, '')
  audit('expired', {'send_id', id, 'by', 'system', 'digest', field(k_send(id), 'digest'),
    'account_id', field(k_send(id), 'account')})
end
`

func script(body string) *redis.Script { return redis.NewScript(luaKeys + luaBase + body) }

func finishingScript(body string) *redis.Script {
	return redis.NewScript(luaKeys + luaBase + luaFinish + body)
}

// createScript stores a new pending record, or answers for an existing one.
//
//	KEYS[1] record  KEYS[2] history
//	ARGV[7] send_id  ARGV[8] digest  ARGV[9] request JSON  ARGV[10] metadata JSON ("" if none)
//	ARGV[11] account  ARGV[12] operation  ARGV[13] requested_by  ARGV[14] deadline ms  ARGV[15] chat_id
//
// Reply: {"created"|"exists", record, history} or {"conflict", existing digest}.
var createScript = script(`
local id, digest, acct, by = ARGV[7], ARGV[8], ARGV[11], ARGV[13]
local rk = KEYS[1]
if redis.call('EXISTS', rk) == 1 then
  local existing = field(rk, 'digest')
  if existing == digest then return reply('exists', id) end
  return {'conflict', existing}
end
local seq = redis.call('INCR', k_seq())
redis.call('HSET', rk, 'req', ARGV[9], 'digest', digest, 'state', 'pending_approval',
  'account', acct, 'op', ARGV[12], 'requested_by', by,
  'created_ms', NOW, 'updated_ms', NOW, 'deadline_ms', ARGV[14], 'seq', seq,
  'gen', 0, 'attempts', 0)
if ARGV[10] ~= '' then redis.call('HSET', rk, 'metadata', ARGV[10]) end
if ARGV[15] ~= '' then redis.call('HSET', rk, 'chat_id', ARGV[15]) end
redis.call('ZADD', k_all(), seq, id)
redis.call('ZADD', k_acct_all(acct), seq, id)
set_state(id, acct, seq, '', 'pending_approval')
redis.call('ZADD', k_deadlines(), ARGV[14], id)
event(id, 'pending_approval', '', by, 0, 'enqueued')
audit('enqueued', {'send_id', id, 'by', by, 'digest', digest, 'account_id', acct})
return reply('created', id)
`)

// approveScript approves a pending send (or expires it if its deadline passed).
//
//	KEYS[1] results stream  KEYS[2] record
//	ARGV[7] send_id  ARGV[8] digest  ARGV[9] approver  ARGV[10] note
//
// Reply: {code, record, history}; code ok | not_found | not_pending | expired |
// digest_mismatch | self_approval.
var approveScript = finishingScript(`
local id, digest, by, note = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local rk = KEYS[2]
if redis.call('EXISTS', rk) == 0 then return {'not_found'} end
local st = field(rk, 'state')
if st ~= 'pending_approval' then return reply('not_pending', id) end
if numf(rk, 'deadline_ms') <= NOW then
  expire_pending(id)
  return reply('expired', id)
end
if field(rk, 'digest') ~= digest then return reply('digest_mismatch', id) end
if field(rk, 'requested_by') == by then return reply('self_approval', id) end
redis.call('HSET', rk, 'state', 'approved', 'approved_by', by, 'approved_ms', NOW,
  'approved_digest', digest, 'approved_note', note, 'updated_ms', NOW)
redis.call('HINCRBY', rk, 'gen', 1)
local acct = field(rk, 'account')
set_state(id, acct, field(rk, 'seq'), st, 'approved')
redis.call('ZREM', k_deadlines(), id)
redis.call('ZADD', k_outbox(), NOW, id)
redis.call('ZADD', k_watch(), NOW, id)
event(id, 'approved', '', by, 0, 'approved')
audit('approved', {'send_id', id, 'by', by, 'digest', digest, 'account_id', acct, 'note', note})
return reply('ok', id)
`)

// stopScript rejects or cancels a send that has not started sending.
//
//	KEYS[1] results stream  KEYS[2] record
//	ARGV[7] send_id  ARGV[8] by  ARGV[9] note  ARGV[10] final state  ARGV[11] reason  ARGV[12] audit event
//
// Reply: {code, record, history}; code ok | not_found | final | too_late.
var stopScript = finishingScript(`
local id, by, note = ARGV[7], ARGV[8], ARGV[9]
local rk = KEYS[2]
if redis.call('EXISTS', rk) == 0 then return {'not_found'} end
local st = field(rk, 'state')
if is_terminal(st) then return reply('final', id) end
if st == 'sending' then return reply('too_late', id) end
finish(id, ARGV[10], ARGV[11], '', {'decided_by', by, 'decided_ms', NOW, 'decision_note', note}, by)
audit(ARGV[12], {'send_id', id, 'by', by, 'digest', field(rk, 'digest'),
  'account_id', field(rk, 'account'), 'note', note})
return reply('ok', id)
`)

// expireScript expires pending sends whose deadline passed.
//
//	KEYS[1] results stream  KEYS[2] deadlines
//	ARGV[7] limit
//
// Reply: the expired send ids.
var expireScript = finishingScript(`
local ids = redis.call('ZRANGE', KEYS[2], '-inf', NOW, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[7]))
local out = {}
for _, id in ipairs(ids) do
  local rk = k_send(id)
  if field(rk, 'state') == 'pending_approval' and numf(rk, 'deadline_ms') <= NOW then
    expire_pending(id)
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
local due = redis.call('ZRANGE', KEYS[1], '-inf', NOW, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[7]), 'WITHSCORES')
local out = {}
for i = 1, #due, 2 do
  local id, score = due[i], due[i + 1]
  local rk = k_send(id)
  local st = field(rk, 'state')
  if st == 'approved' or st == 'waiting' or st == 'sending' then
    out[#out + 1] = id
    out[#out + 1] = field(rk, 'gen')
    out[#out + 1] = field(rk, 'digest')
    out[#out + 1] = field(rk, 'op')
    out[#out + 1] = field(rk, 'account')
    out[#out + 1] = score
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', k_watch(), id)
  end
end
return out
`)

// markReleasedScript removes an outbox entry if its release generation is
// still the record's, and starts the watchdog's clock at the release. An entry
// already gone (the task began, was held or finished first) leaves the watch
// score to the script that removed it.
//
//	KEYS[1] outbox  KEYS[2] record
//	ARGV[7] send_id  ARGV[8] gen
//
// Reply: 1 removed, 0 not current.
var markReleasedScript = script(`
if tonumber(field(KEYS[2], 'gen')) == tonumber(ARGV[8]) then
  local removed = redis.call('ZREM', KEYS[1], ARGV[7])
  local st = field(KEYS[2], 'state')
  if removed == 1 and (st == 'approved' or st == 'waiting' or st == 'sending') then
    redis.call('ZADD', k_watch(), NOW, ARGV[7])
  end
  return removed
end
return 0
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
  if field(rk, 'state') == 'waiting' then
    redis.call('HINCRBY', rk, 'gen', 1)
    redis.call('HSET', rk, 'wait_until_ms', NOW, 'updated_ms', NOW)
    redis.call('ZADD', k_outbox(), NOW, id)
    redis.call('ZADD', k_watch(), NOW, id)
    event(id, 'waiting', 'paused', by, 0, 'released by resume')
  end
end
return #ids
`)

// optOutScript adds or removes a contact on the opt-out list.
//
//	KEYS[1] optout
//	ARGV[7] contact id  ARGV[8] by  ARGV[9] "1" add, "0" remove
//
// Reply: 1 if the list changed.
var optOutScript = script(`
local contact, by = ARGV[7], ARGV[8]
local changed, name
if ARGV[9] == '1' then
  changed, name = redis.call('SADD', KEYS[1], contact), 'optout_added'
else
  changed, name = redis.call('SREM', KEYS[1], contact), 'optout_removed'
end
if changed == 1 then audit(name, {'contact_id', contact, 'by', by}) end
return changed
`)

// beginScript re-checks everything at the moment of sending and starts (or
// takes over) an attempt.
//
//	KEYS[1] results stream  KEYS[2] record
//	ARGV[7] send_id  ARGV[8] gen  ARGV[9] digest  ARGV[10] token  ARGV[11] lease ms  ARGV[12..] contact ids
//
// Reply: {code, record, history}; code ok | not_found | final | stale | held |
// opted_out | in_flight | reconcile.
var beginScript = finishingScript(`
local id, digest, token, lease = ARGV[7], ARGV[9], ARGV[10], tonumber(ARGV[11])
local rk = KEYS[2]
if redis.call('EXISTS', rk) == 0 then return {'not_found'} end
local st = field(rk, 'state')
if is_terminal(st) then return reply('final', id) end
if st == 'pending_approval' then return reply('stale', id) end
if numf(rk, 'gen') ~= tonumber(ARGV[8]) or field(rk, 'digest') ~= digest
  or field(rk, 'approved_digest') ~= digest then
  return reply('stale', id)
end
local acct, seq = field(rk, 'account'), field(rk, 'seq')
if st == 'sending' then
  if numf(rk, 'lease_until_ms') > NOW then return reply('in_flight', id) end
  redis.call('HSET', rk, 'attempt_token', token, 'lease_until_ms', NOW + lease, 'updated_ms', NOW)
  -- the entry of a RecoverStuck release that began before MarkReleased
  redis.call('ZREM', k_outbox(), id)
  redis.call('ZADD', k_watch(), NOW + lease, id)
  redis.call('ZADD', k_leases(), NOW + lease, id)
  event(id, 'sending', '', '', numf(rk, 'attempts'), 'lease expired: reconciling')
  return reply('reconcile', id)
end
if st ~= 'approved' and st ~= 'waiting' then return reply('stale', id) end

local held
if redis.call('EXISTS', k_paused_global()) == 1 then
  held = k_held_global()
elseif redis.call('SISMEMBER', k_paused_accounts(), acct) == 1 then
  held = k_held_acct(acct)
end
if held then
  redis.call('HSET', rk, 'state', 'waiting', 'wait_reason', 'paused', 'updated_ms', NOW)
  redis.call('HDEL', rk, 'wait_until_ms')
  set_state(id, acct, seq, st, 'waiting')
  redis.call('ZREM', k_outbox(), id)
  unpark(id, acct)
  redis.call('SADD', held, id)
  redis.call('ZREM', k_watch(), id)
  event(id, 'waiting', 'paused', '', 0, 'held by pause')
  return reply('held', id)
end

for i = 12, #ARGV do
  if redis.call('SISMEMBER', k_optout(), ARGV[i]) == 1 then
    finish(id, 'skipped', 'opted_out', 'a contact is on the opt-out list', {}, '')
    return reply('opted_out', id)
  end
end

local attempt = redis.call('HINCRBY', rk, 'attempts', 1)
redis.call('HSET', rk, 'state', 'sending', 'attempt_token', token, 'attempt_started_ms', NOW,
  'lease_until_ms', NOW + lease, 'updated_ms', NOW)
redis.call('HDEL', rk, 'wait_until_ms', 'wait_reason')
set_state(id, acct, seq, st, 'sending')
redis.call('ZREM', k_outbox(), id)
redis.call('ZADD', k_watch(), NOW + lease, id)
redis.call('ZADD', k_leases(), NOW + lease, id)
unpark(id, acct)
event(id, 'sending', '', '', attempt, 'attempt started')
return reply('ok', id)
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
// Reply: {code, record, history}; code ok | not_found | final | stale_attempt |
// message_claimed.
var finishScript = finishingScript(`
local id, token = ARGV[7], ARGV[8]
local rk = KEYS[2]
if redis.call('EXISTS', rk) == 0 then return {'not_found'} end
local st = field(rk, 'state')
if is_terminal(st) then return reply('final', id) end
if token ~= '' then
  if st ~= 'sending' or field(rk, 'attempt_token') ~= token then return reply('stale_attempt', id) end
elseif st ~= 'approved' and st ~= 'waiting' then
  return reply('stale_attempt', id)
end
local mid = ARGV[12]
if ARGV[9] == 'sent' and mid ~= '' and new_message_op(field(rk, 'op')) then
  local chat = ARGV[13]
  if chat == '' then chat = field(rk, 'chat_id') end
  local owner = redis.call('GET', k_msg(mid))
  if (owner and owner ~= id)
    or (not owner and chat ~= '' and redis.call('SISMEMBER', k_claimed(chat), mid) == 1) then
    return reply('message_claimed', id)
  end
end
local extra = {'dry_run', ARGV[14]}
if ARGV[12] ~= '' then extra[#extra + 1] = 'message_id'; extra[#extra + 1] = ARGV[12] end
if ARGV[13] ~= '' then extra[#extra + 1] = 'chat_id'; extra[#extra + 1] = ARGV[13] end
finish(id, ARGV[9], ARGV[10], ARGV[11], extra, '')
return reply('ok', id)
`)

// deferScript parks a send in state waiting until a time, in the outbox with
// a new release generation.
//
//	KEYS[1] record  KEYS[2] outbox
//	ARGV[7] send_id  ARGV[8] token ("" = no attempt)  ARGV[9] until ms  ARGV[10] reason  ARGV[11] until RFC 3339
//
// Reply: {code, record, history}; code ok | not_found | final | stale_attempt.
var deferScript = script(`
local id, token = ARGV[7], ARGV[8]
local rk = KEYS[1]
if redis.call('EXISTS', rk) == 0 then return {'not_found'} end
local st = field(rk, 'state')
if is_terminal(st) then return reply('final', id) end
if token ~= '' then
  if st ~= 'sending' or field(rk, 'attempt_token') ~= token then return reply('stale_attempt', id) end
elseif st ~= 'approved' and st ~= 'waiting' then
  return reply('stale_attempt', id)
end
local acct = field(rk, 'account')
redis.call('HINCRBY', rk, 'gen', 1)
redis.call('HSET', rk, 'state', 'waiting', 'wait_until_ms', ARGV[9], 'wait_reason', ARGV[10], 'updated_ms', NOW)
redis.call('HDEL', rk, 'attempt_token', 'lease_until_ms')
set_state(id, acct, field(rk, 'seq'), st, 'waiting')
redis.call('ZADD', KEYS[2], ARGV[9], id)
redis.call('ZADD', k_watch(), ARGV[9], id)
redis.call('ZREM', k_leases(), id)
unpark(id, acct)
event(id, 'waiting', ARGV[10], '', 0, 'until ' .. ARGV[11])
return reply('ok', id)
`)

// resolveScript gives a reconciled attempt back: the message clearly did not
// go out, so the send is approved again (same gen). A safety-net outbox entry
// at the end of the reconciler's lease re-releases it (same gen, so the same
// asynq TaskID) should the caller die before its next BeginAttempt.
//
//	KEYS[1] record  KEYS[2] outbox
//	ARGV[7] send_id  ARGV[8] token
//
// Reply: {code, record, history}; code ok | not_found | final | stale_attempt.
var resolveScript = script(`
local id, token = ARGV[7], ARGV[8]
local rk = KEYS[1]
if redis.call('EXISTS', rk) == 0 then return {'not_found'} end
local st = field(rk, 'state')
if is_terminal(st) then return reply('final', id) end
if st ~= 'sending' or token == '' or field(rk, 'attempt_token') ~= token then
  return reply('stale_attempt', id)
end
local lease_until = numf(rk, 'lease_until_ms')
redis.call('HSET', rk, 'state', 'approved', 'updated_ms', NOW)
redis.call('HDEL', rk, 'attempt_token', 'lease_until_ms')
set_state(id, field(rk, 'account'), field(rk, 'seq'), st, 'approved')
redis.call('ZADD', KEYS[2], lease_until, id)
redis.call('ZADD', k_watch(), lease_until, id)
redis.call('ZREM', k_leases(), id)
event(id, 'approved', '', '', numf(rk, 'attempts'), 'reconciled: not sent')
return reply('ok', id)
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
var recoverScript = script(luaISO + `
local cutoff = NOW - tonumber(ARGV[7])
local late = redis.call('ZRANGE', KEYS[1], '-inf', string.format('(%d', cutoff), 'BYSCORE',
  'LIMIT', 0, tonumber(ARGV[8]), 'WITHSCORES')
local out = {}
for i = 1, #late, 2 do
  local id, since = late[i], tonumber(late[i + 1])
  local rk = k_send(id)
  local st, acct = field(rk, 'state'), field(rk, 'account')
  local queued = redis.call('ZSCORE', KEYS[2], id)
  if st ~= 'approved' and st ~= 'waiting' and st ~= 'sending' then
    -- final, pending or gone: not watched
    redis.call('ZREM', KEYS[1], id)
  elseif redis.call('SISMEMBER', k_held_global(), id) == 1
    or (acct ~= '' and redis.call('SISMEMBER', k_held_acct(acct), id) == 1) then
    -- held by a pause: resume releases it
    redis.call('ZREM', KEYS[1], id)
  elseif queued then
    -- in the outbox: the releaser's backlog, not a lost task; look again later
    redis.call('ZADD', KEYS[1], math.max(tonumber(queued), NOW), id)
  elseif st == 'sending' and numf(rk, 'lease_until_ms') >= cutoff then
    -- the lease has not been over for a grace yet
    redis.call('ZADD', KEYS[1], numf(rk, 'lease_until_ms'), id)
  else
    redis.call('HINCRBY', rk, 'gen', 1)
    redis.call('HSET', rk, 'updated_ms', NOW)
    redis.call('ZADD', KEYS[2], NOW, id)
    redis.call('ZADD', KEYS[1], NOW, id)
    redis.call('ZREM', k_leases(), id)
    local attempt = 0
    if st == 'sending' then attempt = numf(rk, 'attempts') end
    event(id, st, '', '` + RecoveredBy + `', attempt, 'recovered: no progress since ' .. iso_ms(since))
    out[#out + 1] = id
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
var expiredLeasesScript = script(luaISO + `
local cutoff = NOW - tonumber(ARGV[7])
local late = redis.call('ZRANGE', KEYS[1], '-inf', string.format('(%d', cutoff), 'BYSCORE',
  'LIMIT', 0, tonumber(ARGV[8]))
local out = {}
for _, id in ipairs(late) do
  local rk = k_send(id)
  local lease_until = numf(rk, 'lease_until_ms')
  if field(rk, 'state') ~= 'sending' or lease_until == 0
    or redis.call('ZSCORE', KEYS[2], id) then
    -- not sending, no lease, or already re-scheduled: not this script's
    redis.call('ZREM', KEYS[1], id)
  elseif lease_until >= cutoff then
    -- the lease was renewed (a takeover): track its real end
    redis.call('ZADD', KEYS[1], lease_until, id)
  else
    redis.call('HINCRBY', rk, 'gen', 1)
    redis.call('HSET', rk, 'updated_ms', NOW)
    redis.call('ZADD', KEYS[2], NOW, id)
    redis.call('ZADD', k_watch(), NOW, id)
    redis.call('ZREM', KEYS[1], id)
    event(id, 'sending', '', '` + RecoveredBy + `', numf(rk, 'attempts'),
      'recovered: lease expired at ' .. iso_ms(lease_until))
    out[#out + 1] = id
  end
end
return out
`)

// isoScript formats ARGV[7..] (ms) with iso_ms, for TestISOMatchesLua.
//
//	KEYS[1] any key of the ledger (routing only)
var isoScript = script(luaISO + `
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
    if field(k_send(id), 'seq') == seq then
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
  k_paused_accounts(), k_optout(), k_audit(), k_claimed(ARGV[10]), k_msg(ARGV[11])}
`)
