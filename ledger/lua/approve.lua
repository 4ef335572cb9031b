-- approveScript approves a pending send (or expires it if its deadline passed).
--
--  KEYS[1] results stream  KEYS[2] record
--  ARGV[7] send_id  ARGV[8] digest  ARGV[9] approver  ARGV[10] note
--
-- Reply: {code}; code ok | not_found | not_pending | expired |
-- digest_mismatch | self_approval.

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
-- a send with no history list so far (not revised) starts an implicit history (hist_flush):
-- its approval is told by approved_ms and approved_by
local implicit = redis.call('EXISTS', k_history(id)) == 0
local kv = {'HSET', rk, 'state', 'approved', 'approved_by', by, 'approved_ms', NOW_S,
  'approved_digest', digest, 'updated_ms', NOW_S, 'gen', str(num(r, 'gen') + 1)}
-- no empty note: the record reads an empty field as an absent one (and a pending send has none)
if note ~= '' then kv[#kv + 1] = 'approved_note'; kv[#kv + 1] = note end
if implicit then kv[#kv + 1] = 'hi'; kv[#kv + 1] = '1' end
redis.call(unpack(kv))
local acct = get(r, 'account')
move(id, acct, get(r, 'seq'), st, 'approved', {outbox = NOW_S, watch = NOW_S})
if not implicit then event(id, nil, 'approved', '', by, 0, 'approved') end
audit('approved', {'send_id', id, 'by', by, 'digest', digest, 'account_id', acct, 'note', note})
return {'ok'}
