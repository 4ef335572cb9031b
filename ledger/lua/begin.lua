-- beginScript re-checks everything at the moment of sending and starts (or
-- takes over) an attempt.
--
--  KEYS[1] results stream  KEYS[2] record
--  ARGV[7] send_id  ARGV[8] gen  ARGV[9] digest  ARGV[10] token  ARGV[11] lease ms
--  ARGV[12] "1" = the caller expects a send in state sending (else stale)
--  ARGV[13] the attempt's watermark (JSON, "" = none)  ARGV[14] k, the number of identities
--  ARGV[15..14+2k] identities: pairs phone-form id, @lid id ("" = unknown; normalized)
--  ARGV[15+2k..] contact ids
--
-- An approved or waiting send with a stop request (see stopScript) is ended
-- as requested instead: reply final.
--
-- A new attempt's start is on the lease clock (Redis's own, see lease_now),
-- like its lease: how long ago an attempt began is judged on one clock
-- whichever replica asks. It stores the watermark and clears the previous
-- attempt's reconciliation fields.
--
-- Reply: {code[, ...]}; code ok | not_found | final | stale | held |
-- opted_out | identity_unresolved | in_flight | reconcile. ok and reconcile
-- add the attempt number, its start (ms) and the lease end (ms); in_flight
-- adds the lease end (ms); identity_unresolved (the send unchanged; a pair
-- seen may have been linked) the id form the recipient is not known by and
-- the number of opt-outs of that form linked to no one.

local id, digest, token, lease = ARGV[7], ARGV[9], ARGV[10], tonumber(ARGV[11])
local rk = KEYS[2]
-- the fields every path reads; the rarer ones are read where they can be held (a field absent
-- from a listpack hash costs HMGET a scan of the whole record)
local r = hmget(rk, {'hi', 'state', 'gen', 'digest', 'approved_digest', 'account', 'seq', 'attempts', 'stop_state'})
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
  hmget_into(rk, r, {'lease_until_ms', 'attempt_started_ms'})
  if num(r, 'lease_until_ms') > lnow then return {'in_flight', get(r, 'lease_until_ms')} end
  redis.call('HSET', rk, 'attempt_token', token, 'lease_until_ms', lease_end, 'updated_ms', NOW_S)
  -- out of the outbox: the entry of a RecoverStuck release that began before MarkReleased
  move(id, acct, seq, st, 'sending', {watch = lease_end, leases = lease_end})
  event(id, r.hi, 'sending', '', '', num(r, 'attempts'), 'lease expired: reconciling')
  return {'reconcile', str(num(r, 'attempts')), get(r, 'attempt_started_ms'), lease_end}
end
if st ~= 'approved' and st ~= 'waiting' then return {'stale'} end
if get(r, 'stop_state') ~= '' then
  -- a stop request the send left sending with (defensive: Defer and
  -- ResolveReconciled already honour it)
  finish_stopped(id, rk, hmget_into(rk, r, {'stop_by', 'stop_note', 'stop_ms'}), 'stop requested while sending')
  return {'final'}
end

local held
if redis.call('EXISTS', k_paused_global()) == 1 then
  held = k_held_global()
elseif redis.call('SISMEMBER', k_paused_accounts(), acct) == 1 then
  held = k_held_acct(acct)
  redis.call('SADD', k_held_accounts(), acct)
end
-- the wait's fields are held (non-empty) only while waiting
if st == 'waiting' then hmget_into(rk, r, {'wait_until_ms', 'wait_reason'}) end
if held then
  hset(rk, r, {'state', 'waiting', 'wait_reason', 'paused', 'updated_ms', NOW_S})
  hdel(rk, r, {'wait_until_ms'})
  move(id, acct, seq, st, 'waiting', {held = held})
  event(id, r.hi, 'waiting', 'paused', '', 0, 'held by pause')
  return {'held'}
end

-- the recipients' identities: a pair of ids seen together is recorded as one person; an id
-- seen alone has its linked id of the other form checked too, or, when it has none, the send
-- is not begun while some opt-out of that form is linked to no one (it may be the recipient's);
-- the unlinked sets are counted, not the opt-out set's markers, which data written before the
-- markers lacks
local nid = tonumber(ARGV[14]) or 0
local ids, unresolved, unlinked = {}, nil, 0
for i = 15 + 2 * nid, #ARGV do ids[#ids + 1] = ARGV[i] end
for i = 0, nid - 1 do
  local phone, lid = ARGV[15 + 2 * i], ARGV[16 + 2 * i]
  if phone ~= '' and lid ~= '' then
    link_identity(k_optout(), phone, lid)
  else
    local known, missing = phone, 'lid'
    if phone == '' then known, missing = lid, 'phone' end
    local other = redis.call('HGET', k_idlink(), known)
    if other then
      ids[#ids + 1] = other
    elseif not unresolved then
      local n = redis.call('SCARD', k_optout_unlinked(missing))
      if n > 0 then unresolved, unlinked = missing, n end
    end
  end
end
if #ids > 0 then
  local hits = redis.call('SMISMEMBER', k_optout(), unpack(ids))
  for i = 1, #hits do
    if hits[i] == 1 and string.sub(ids[i], 1, #UNLINKED) ~= UNLINKED then
      finish(id, hmget(rk, FINISH_FIELDS), 'skipped', 'opted_out', 'a contact is on the opt-out list', {}, '')
      return {'opted_out'}
    end
  end
end
if unresolved then
  -- an opt-out of a form the recipient is not known by may be theirs: a human decides
  return {'identity_unresolved', unresolved, str(unlinked)}
end

local attempt = num(r, 'attempts') + 1
local started = str(lnow)
local kv = {'state', 'sending', 'attempt_token', token, 'attempt_started_ms', started,
  'lease_until_ms', lease_end, 'updated_ms', NOW_S, 'attempts', attempt}
-- the first attempt of an implicit history is told by attempt_at_ms (hist_implicit)
local implicit = get(r, 'hi') == '1' and attempt == 1
if implicit then
  kv[#kv + 1] = 'attempt_at_ms'
  kv[#kv + 1] = NOW_S
else
  hist_flush(id, r.hi)
end
-- the fields of the wait and of a previous attempt (its watermark and reconciliation, only
-- ever written once an attempt began) go
local gone = {}
if st == 'waiting' then gone = {'wait_until_ms', 'wait_reason'} end
if attempt > 1 then
  local prev = {'reconcile_absent', 'reconcile_lands_ms', 'reconcile_next_ms', 'reconcile_why'}
  if ARGV[13] == '' then prev[#prev + 1] = 'attempt_watermark' end
  hmget_into(rk, r, prev)
  for _, f in ipairs(prev) do gone[#gone + 1] = f end
end
if ARGV[13] ~= '' then
  kv[#kv + 1] = 'attempt_watermark'
  kv[#kv + 1] = ARGV[13]
end
hset(rk, r, kv)
hdel(rk, r, gone)
-- out of the outbox too: still there when the task began before MarkReleased
move(id, acct, seq, st, 'sending', {watch = lease_end, leases = lease_end})
if not implicit then event(id, nil, 'sending', '', '', attempt, 'attempt started') end
return {'ok', str(attempt), started, lease_end}
