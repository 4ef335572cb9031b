-- The ledger's Lua library: every definition a script (the other files of
-- this folder) may use. By EVALSHA it is not run as one: when a script is
-- built, lualib.go gives it only the definitions its body uses, directly or
-- through other definitions, in this file's order, after the constants
-- generated from Go (luaGenerated: HISTORY_MAX, RECOVERED_BY, is_terminal,
-- new_message_op, the results stream's names R_* and EV_*). As a Redis
-- Function library (package internal/luafn) its local functions and
-- string/number constants are made once, at load, and every other definition
-- (values from ARGV/KEYS, tables, anything that calls a function) runs at the
-- start of each call whose script needs it.
--
-- Rules the linker relies on: a definition starts at a line "local ..." in
-- column 0 with the comment lines ("--" in column 0) just above it, and runs
-- to the next one; each uses only definitions above it; every name is
-- defined once (TestPreludeDefinesEveryName); a local function ends at its
-- own "end" (a statement after it would run at load: luafn.Parse refuses it).
--
-- Every ledger script takes the common ARGV[1..6] (Ledger.argv):
--   ARGV[1] key tag "{prefix}:"   ARGV[2] now (Unix ms)        ARGV[3] now (RFC 3339, ms)
--   ARGV[4] retention (ms)        ARGV[5] results stream MAXLEN ARGV[6] audit stream MAXLEN
-- (the breaker and queue_after scripts excepted: their headers say theirs).

-- The key builders, the Lua twin of Keys (keys.go; TestKeysMatchLua). ARGV[1] is always the tag "{prefix}:"; every key a script
-- touches is built from it, so all are in the slot of the script's declared
-- KEYS.
local P = ARGV[1]
local function k_send(id) return P .. 'send:' .. id end
local function k_history(id) return P .. 'history:' .. id end
local function k_seq() return P .. 'seq' end
local function k_all() return P .. 'idx:all' end
local function k_state(s) return P .. 'idx:state:' .. s end
local function k_acct(a, s) return P .. 'idx:acct:' .. a .. ':' .. s end
local function k_acct_all(a) return P .. 'idx:acctall:' .. a end
local function k_deadlines() return P .. 'deadlines' end
local function k_outbox() return P .. 'outbox' end
local function k_watch() return P .. 'watch' end
local function k_leases() return P .. 'leases' end
local function k_finished() return P .. 'finished' end
local function k_held_global() return P .. 'held:global' end
local function k_held_acct(a) return P .. 'held:acct:' .. a end
local function k_held_accounts() return P .. 'held:accounts' end
local function k_paused_global() return P .. 'paused:global' end
local function k_paused_accounts() return P .. 'paused:accounts' end
local function k_optout() return P .. 'optout' end
local function k_idlink() return P .. 'idlink' end
local function k_optout_unlinked(form) return P .. 'optout:unlinked:' .. form end
local function k_optout_info() return P .. 'optout:info' end
local function k_contact(c) return P .. 'contact:' .. c end
local function k_audit() return P .. 'audit' end
local function k_msg(mid) return P .. 'msg:' .. mid end
local function k_inbound_seen(key) return P .. 'inbound:seen:' .. key end

-- Clock, field access, index moves, history, audit.
local NOW = tonumber(ARGV[2])
-- NOW as Redis arguments take it (a Lua number is formatted on every call)
local NOW_S = ARGV[2]
local NOW_ISO = ARGV[3]
local RETENTION = ARGV[4]
local RESULTS_MAXLEN = ARGV[5]
local AUDIT_MAXLEN = ARGV[6]

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

-- hmget_into reads the fields names into r (read by hmget) too; returns r
local function hmget_into(rk, r, names)
  local vals = redis.call('HMGET', rk, unpack(names))
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

-- the attempt-token guard: whether token owns the send's current attempt (r
-- read with state and attempt_token), i.e. the send is sending under that
-- token. With no_attempt_ok, an empty token also owns an approved or waiting
-- send (a send ended before any attempt began, e.g. by a guard).
local function attempt_owner(r, token, no_attempt_ok)
  if token == '' then
    local st = get(r, 'state')
    return no_attempt_ok and (st == 'approved' or st == 'waiting')
  end
  return get(r, 'state') == 'sending' and get(r, 'attempt_token') == token
end

-- HSET rk with the flat name/value list kv, in one command, and keep r in step
local function hset(rk, r, kv)
  for i = 2, #kv, 2 do
    kv[i] = str(kv[i])
    r[kv[i - 1]] = kv[i]
  end
  redis.call('HSET', rk, unpack(kv))
end

-- Long values (the request JSON) are kept in chunks of at most LONG bytes,
-- fields name, name.1, name.2, ... with their count in name.n, when the whole
-- value is at most LONG_MAX: Redis keeps a hash whose every value is at most
-- hash-max-listpack-value (64 bytes by default) as one listpack, about 60% of
-- the memory of a hash table; one value over it converts the whole hash.
-- Longer values stay whole (more chunks than that would cost more than they
-- save). decodeRecord joins them (joinLong in record.go).
local LONG, LONG_MAX = 64, 1024

-- the HSET name/value pairs (appended to kv) that store v under field name,
-- and the HDEL names (appended to del) of the chunks of its old value
-- (old_n: its name.n, '' if none) that the new one does not overwrite
local function put_long(kv, del, name, v, old_n)
  local n = 1
  if #v > LONG and #v <= LONG_MAX then n = math.ceil(#v / LONG) end
  if n == 1 then
    kv[#kv + 1] = name; kv[#kv + 1] = v
  else
    kv[#kv + 1] = name; kv[#kv + 1] = string.sub(v, 1, LONG)
    for i = 1, n - 1 do
      kv[#kv + 1] = name .. '.' .. i; kv[#kv + 1] = string.sub(v, i * LONG + 1, (i + 1) * LONG)
    end
    kv[#kv + 1] = name .. '.n'; kv[#kv + 1] = tostring(n)
  end
  local old = tonumber(old_n) or 1
  for i = n, old - 1 do del[#del + 1] = name .. '.' .. i end
  if n == 1 and old > 1 then del[#del + 1] = name .. '.n' end
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

-- The work lists a send is on, by state: the one table every transition
-- follows (move), so that no script keeps set membership by hand. Besides
-- these, every send is in its state's index, global and per account
-- (idx:state:<s>, idx:acct:<a>:<s>, scored by seq).
--   deadlines  pending_approval          score: the approval deadline
--   outbox     approved/waiting/sending  while a task is to be released; score: release time
--   watch      approved/waiting/sending  unless held by a pause; score: when it must have moved
--   held       waiting                   while a pause holds it (held:global or held:acct:<a>)
--   leases     sending                   while its attempt lease runs; score: lease end
--   finished   a terminal state          member state\nseq\nid\nacct; score: when it ended
-- It is written out as code (on_outbox, zlist_move, move) rather than kept as Lua tables: a
-- script builds its definitions on every call, and tables cost it far more than code.
--
-- whether a send in state s is on the outbox and watch lists (approved, waiting, sending)
local function on_outbox(s)
  return s == 'approved' or s == 'waiting' or s == 'sending'
end

-- one sorted-set work list's part of a move: the send goes on it with score when it is on the
-- list in the new state (now) and the move names a score, else off it if it was on it (was)
local function zlist_move(key, id, was, now, score)
  if now and score then
    redis.call('ZADD', key, score, id)
  elseif was then
    redis.call('ZREM', key, id)
  end
end

-- move the send from state from to state to ('' from: a new send), in the
-- state indexes and in the work lists above. at gives the score of each
-- list the send is to be on in state to (deadlines, outbox, watch, leases;
-- held: the held set's key); a list of from's state that at does not name is
-- left. The record's fields are the caller's.
local function move(id, acct, seq, from, to, at)
  if from ~= to then
    if from ~= '' then
      redis.call('ZREM', k_state(from), id)
      redis.call('ZREM', k_acct(acct, from), id)
    end
    redis.call('ZADD', k_state(to), seq, id)
    redis.call('ZADD', k_acct(acct, to), seq, id)
  end
  -- the sorted-set lists in the order deadlines, outbox, watch, leases
  zlist_move(k_deadlines(), id, from == 'pending_approval', to == 'pending_approval', at.deadlines)
  local was, now = on_outbox(from), on_outbox(to)
  zlist_move(k_outbox(), id, was, now, at.outbox)
  zlist_move(k_watch(), id, was, now, at.watch)
  zlist_move(k_leases(), id, from == 'sending', to == 'sending', at.leases)
  if from == 'waiting' then
    redis.call('SREM', k_held_global(), id)
    if acct ~= '' then redis.call('SREM', k_held_acct(acct), id) end
  end
  if to == 'waiting' and at.held then redis.call('SADD', at.held, id) end
  if is_terminal(from) then redis.call('ZREM', k_finished(), from .. '\n' .. seq .. '\n' .. id .. '\n' .. acct) end
  if is_terminal(to) then redis.call('ZADD', k_finished(), NOW_S, to .. '\n' .. seq .. '\n' .. id .. '\n' .. acct) end
end

-- the attempt lease of a sending send now ends at s (ms): the leases entry
-- follows, and the watch too unless the send is queued in the outbox (the
-- watchdog re-scheduled it: its watch score is its outbox time)
local function relet(id, s)
  if not redis.call('ZSCORE', k_outbox(), id) then redis.call('ZADD', k_watch(), s, id) end
  redis.call('ZADD', k_leases(), 'XX', s, id)
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

-- iso_ms(ms), the Lua twin of isoMs (RFC 3339 UTC, milliseconds
-- shown as Go's RFC3339Nano shows them); Redis's Lua has no os.date. The
-- date is Howard Hinnant's civil_from_days; TestISOMatchesLua checks it.
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

-- A send's history is the list {p}:history:<id>, or implicit: a send approved
-- with no history list gets the record field hi = "1", and while it has it,
-- the routine events of its life are not stored but told by fields the
-- transitions write anyway (hist_implicit; historyOf in history.go is
-- the Go twin): approved (approved_ms, approved_by), its first attempt's start
-- (attempt_at_ms) and its final event (finished_ms, state, reason, detail,
-- attempts). Any other event first writes those out to the list and drops hi
-- (hist_flush), so the list is the whole history again. A send that goes
-- approved → sending → final, the common case, never has a history list.
local HIST_FIELDS = {'hi', 'approved_ms', 'approved_by', 'attempt_at_ms', 'state', 'reason', 'detail',
  'finished_ms', 'attempts'}

-- a tasks.Event as its JSON
local function event_json(at, state, reason, by, attempt, detail)
  local ev = {at = at, state = state}
  if reason ~= '' then ev.reason = reason end
  if by ~= '' then ev.by = by end
  if attempt > 0 then ev.attempt = attempt end
  if detail ~= '' then ev.detail = detail end
  return cjson.encode(ev)
end

-- the implicit events of a record h (read with HIST_FIELDS), as JSON, oldest first
local function hist_implicit(h)
  local out = {}
  if h.approved_ms then
    out[#out + 1] = event_json(iso_ms(tonumber(h.approved_ms)), 'approved', '', get(h, 'approved_by'), 0, 'approved')
  end
  if h.attempt_at_ms then
    out[#out + 1] = event_json(iso_ms(tonumber(h.attempt_at_ms)), 'sending', '', '', 1, 'attempt started')
  end
  if is_terminal(get(h, 'state')) then
    out[#out + 1] = event_json(iso_ms(num(h, 'finished_ms')), get(h, 'state'), get(h, 'reason'), '',
      num(h, 'attempts'), get(h, 'detail'))
  end
  return out
end

-- hist_flush: if the send's history is implicit (hi: the record's hi field
-- as read, or nil), write its implicit events to the list and drop hi. Called
-- before an event that is not routine, and before the record's fields the
-- implicit events are told by change. Returns false (the history is now the
-- list) for the caller's hi.
local function hist_flush(id, hi)
  if hi ~= '1' then return false end
  local rk, hk = k_send(id), k_history(id)
  local h = hmget(rk, HIST_FIELDS)
  local evs = hist_implicit(h)
  if #evs > 0 then
    redis.call('RPUSH', hk, unpack(evs))
    local ttl = redis.call('PTTL', rk)
    if ttl > 0 then redis.call('PEXPIRE', hk, ttl) end
  end
  redis.call('HDEL', rk, 'hi', 'attempt_at_ms')
  return false
end

-- append a tasks.Event to the send's history, keeping the newest HISTORY_MAX;
-- hi is the record's hi field as read before this transition (nil if absent):
-- an implicit history is first written out (hist_flush)
local function event(id, hi, state, reason, by, attempt, detail)
  hist_flush(id, hi)
  local hk = k_history(id)
  if redis.call('RPUSH', hk, event_json(NOW_ISO, state, reason, by, attempt, detail)) > HISTORY_MAX then
    redis.call('LTRIM', hk, -HISTORY_MAX, -1)
  end
end

-- append a decision to the audit stream; fields is a flat name/value list
local function audit(name, fields)
  local args = {'XADD', k_audit(), 'MAXLEN', '~', AUDIT_MAXLEN, '*', 'event', name, 'at', NOW_ISO}
  for i = 1, #fields do args[#args + 1] = fields[i] end
  redis.call(unpack(args))
end

-- the start of the marker members older releases kept in the opt-out set (one per id form
-- while an opt-out of that form was linked to no one): none is written any more, and the
-- opt-out check ignores those left (unlinkedMarkerPrefix in decisions.go)
local UNLINKED = '?unlinked:'

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
  return added, linked
end

-- record that phone (a phone-form id) and lid (an @lid id), both normalized,
-- are one person, both ways, and carry an opt-out of either to the other:
-- from then on an opt-out added with one form is found under both, and
-- neither is unlinked any more. Returns 1 if the link is new, 0 if known.
local function link_identity(optout, phone, lid)
  if redis.call('HGET', k_idlink(), phone) == lid and redis.call('HGET', k_idlink(), lid) == phone then
    return 0
  end
  redis.call('HSET', k_idlink(), phone, lid, lid, phone)
  redis.call('SREM', k_optout_unlinked('phone'), phone)
  redis.call('SREM', k_optout_unlinked('lid'), lid)
  local p = redis.call('SISMEMBER', optout, phone)
  local l = redis.call('SISMEMBER', optout, lid)
  if p ~= l then
    redis.call('SADD', optout, phone, lid)
    local from, to = phone, lid
    if l == 1 then from, to = lid, phone end
    audit('optout_linked', {'contact_id', from, 'linked_id', to})
  end
  return 1
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
  return removed, linked
end

-- remove id from a zset only if it is still the entry of that record (seq)
local function zrem_if(key, id, seq)
  local s = redis.call('ZSCORE', key, id)
  if s and tonumber(s) == tonumber(seq) then redis.call('ZREM', key, id) end
end

-- The terminal transition (finish). Requires KEYS[1] = results stream.
local RESULTS = KEYS[1]

-- how long a message's claim ({p}:msg:<id>) is kept: as long as the record, and at least
-- CLAIM_MIN_MS
local function claim_ttl()
  return str(math.max(tonumber(RETENTION), CLAIM_MIN_MS))
end

-- the fields finish reads: the r given to finish is read with these (hmget); finish reads
-- the rarer ones itself where they can be held (the wait's while waiting, revised_by with a
-- revision): a field absent from a listpack hash costs HMGET a scan of the whole record
local FINISH_FIELDS = {'hi', 'state', 'account', 'seq', 'op', 'attempts', 'digest', 'message_id', 'chat_id',
  'metadata', 'dry_run', 'approved_by', 'attempt_token', 'lease_until_ms', 'revision'}

-- a JSON object member ,"name":<v as a JSON string>, or '' when v is empty
local function json_opt(name, v)
  if v == '' then return '' end
  return ',"' .. name .. '":' .. cjson.encode(v)
end

-- the tasks.Result JSON; strings escaped by cjson, metadata copied verbatim. Built by one
-- concatenation: a table of parts and table.concat cost several times more
-- (TestResultJSONMatchesParts holds it to the parts' form byte for byte).
local function result_json(id, rec)
  local dry, meta, rev = '', '', ''
  if get(rec, 'dry_run') == '1' then dry = ',"dry_run":true' end
  if get(rec, 'metadata') ~= '' then meta = ',"metadata":' .. rec.metadata end
  if get(rec, 'revision') ~= '' then
    rev = ',"revision":' .. string.format('%d', num(rec, 'revision')) .. json_opt('revised_by', get(rec, 'revised_by'))
  end
  return '{"send_id":' .. cjson.encode(id) .. ',"operation":' .. cjson.encode(get(rec, 'op'))
    .. ',"account_id":' .. cjson.encode(get(rec, 'account')) .. ',"state":' .. cjson.encode(get(rec, 'state'))
    .. json_opt('reason', get(rec, 'reason')) .. json_opt('message_id', get(rec, 'message_id'))
    .. json_opt('chat_id', get(rec, 'chat_id')) .. ',"attempts":' .. string.format('%d', num(rec, 'attempts'))
    .. json_opt('approved_by', get(rec, 'approved_by')) .. ',"finished_at":' .. cjson.encode(NOW_ISO)
    .. dry .. meta .. rev .. '}'
end

-- finish: set the final state (and extra hash fields), move indexes and work
-- lists (move), append history, write the result, claim the message id
-- (sends of a new message only; claimed: the caller has), start the retention clock. r is the record
-- read with FINISH_FIELDS; it is kept up to date. Returns the result JSON.
local function finish(id, r, state, reason, detail, extra, by, claimed)
  local rk, hk = k_send(id), k_history(id)
  local from, acct, seq = get(r, 'state'), get(r, 'account'), get(r, 'seq')
  -- the final event is implicit when the history is and the send ends on no one's decision;
  -- else the implicit history is written out before the fields that tell it change
  local implicit = get(r, 'hi') == '1' and by == ''
  if not implicit then
    hist_flush(id, r.hi)
    r.hi = nil
  end
  if from == 'waiting' then hmget_into(rk, r, {'wait_until_ms', 'wait_reason'}) end
  if r.revision then hmget_into(rk, r, {'revised_by'}) end
  local kv = {'state', state, 'updated_ms', NOW_S, 'finished_ms', NOW_S}
  -- an empty reason or detail is not written where the record holds none: the record reads an
  -- empty field as an absent one, and only a final state's record holds a non-empty one
  if reason ~= '' or is_terminal(from) then kv[#kv + 1] = 'reason'; kv[#kv + 1] = reason end
  if detail ~= '' or is_terminal(from) then kv[#kv + 1] = 'detail'; kv[#kv + 1] = detail end
  for i = 1, #extra do kv[#kv + 1] = extra[i] end
  -- the attempt's and the wait's fields are emptied in the same HSET rather than deleted with
  -- an HDEL of their own: the record reads an empty field as an absent one (the wait's are
  -- held, non-empty, only while waiting)
  for _, f in ipairs({'attempt_token', 'lease_until_ms', 'wait_until_ms', 'wait_reason'}) do
    if get(r, f) ~= '' then kv[#kv + 1] = f; kv[#kv + 1] = '' end
  end
  hset(rk, r, kv)
  move(id, acct, seq, from, state, {})
  local attempts = num(r, 'attempts')
  if not implicit then event(id, nil, state, reason, by, attempts, detail) end

  local mid, chat, op = get(r, 'message_id'), get(r, 'chat_id'), get(r, 'op')
  local meta = get(r, 'metadata')
  if meta == '' then meta = '{}' end
  local result = result_json(id, r)
  local dry = 'false'
  if get(r, 'dry_run') == '1' then dry = 'true' end
  redis.call('XADD', RESULTS, 'MAXLEN', '~', RESULTS_MAXLEN, '*',
    R_SEND_ID, id, R_OPERATION, op, R_ACCOUNT_ID, acct,
    R_STATE, state, R_REASON, reason, R_MESSAGE_ID, mid, R_CHAT_ID, chat,
    R_ATTEMPTS, string.format('%d', attempts), R_APPROVED_BY, get(r, 'approved_by'),
    R_FINISHED_AT, NOW_ISO, R_METADATA, meta, R_DRY_RUN, dry,
    R_RESULT, result)

  if state == 'sent' and mid ~= '' and new_message_op(op) and not claimed then
    -- the claim: kept as long as the record, and at least CLAIM_MIN_MS
    redis.call('SET', k_msg(mid), id, 'PX', claim_ttl())
  end
  redis.call('PEXPIRE', rk, RETENTION)
  if not implicit then redis.call('PEXPIRE', hk, RETENTION) end
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

-- seen() marks an inbound event's dedupe key; ARGV[7] key ("" none),
-- ARGV[8] TTL ms. seen() is true when the event was processed before.
local function seen()
  if ARGV[7] == '' then return false end
  return redis.call('SET', k_inbound_seen(ARGV[7]), '1', 'NX', 'PX', ARGV[8]) == false
end

-- open_breaker() opens the breaker of KEYS[1] and appends the event to KEYS[2].
-- ARGV[1] now (ms), ARGV[2] status, ARGV[3] account, ARGV[4] now (RFC 3339), ARGV[5] TTL (ms).
local function open_breaker()
  redis.call('HSET', KEYS[1], 'open', '1', 'status', ARGV[2], 'since_ms', ARGV[1], 'probe_ms', ARGV[1])
  redis.call('HDEL', KEYS[1], 'd401_ms', 'd401_n')
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('XADD', KEYS[2], '*', R_EVENT, EV_ACCOUNT_BREAKER_OPEN,
    R_ACCOUNT_ID, ARGV[3], R_STATUS, ARGV[2], R_AT, ARGV[4])
end
