-- createScript stores a new pending record, or answers for an existing one.
--
--  KEYS[1] record
--  ARGV[7] send_id  ARGV[8] digest  ARGV[9] request JSON without the fields the record holds on its own
--  (storedRequest in record.go)  ARGV[10] metadata JSON ("" if none)
--  ARGV[11] account  ARGV[12] operation  ARGV[13] requested_by  ARGV[14] deadline ms  ARGV[15] chat_id
--  ARGV[16] stop_if_replied_since ms (-1: none)  ARGV[17..] contact ids (Keys.Contact)
--
-- Reply: {"created"} | {"exists"} | {"conflict", existing digest}.

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
-- Fields whose value at creation is their default are not written: updated_ms (created_ms),
-- gen and attempts (0). decodeRecord decodes the defaults; the scripts read them with num() (0
-- when absent), or gen as a string only in states approve has set it in (due, mark_released).
-- The request's chunks go last: a field is found by a scan of the record from its start, and the
-- fields the scripts read are the others.
local kv = {'HSET', rk, 'digest', digest, 'state', 'pending_approval',
  'account', acct, 'op', ARGV[12], 'requested_by', by,
  'created_ms', NOW_S, 'deadline_ms', ARGV[14], 'seq', seq}
if ARGV[10] ~= '' then kv[#kv + 1] = 'metadata'; kv[#kv + 1] = ARGV[10] end
if ARGV[15] ~= '' then kv[#kv + 1] = 'chat_id'; kv[#kv + 1] = ARGV[15] end
put_long(kv, {}, 'req', ARGV[9], '')
redis.call(unpack(kv))
move(id, acct, seq, '', 'pending_approval', {deadlines = ARGV[14]})
-- the contact index (inbound.go): ARGV[16] stop_if_replied_since ms (-1: none), ARGV[17..] contact ids
for i = 17, #ARGV do
  redis.call('ZADD', k_contact(ARGV[i]), ARGV[16], id)
  redis.call('PEXPIRE', k_contact(ARGV[i]), RETENTION)
end
-- no history event: the record tells its creation (decodeHistory)
audit('enqueued', {'send_id', id, 'by', by, 'digest', digest, 'account_id', acct})
return {'created'}
