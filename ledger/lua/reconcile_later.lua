-- reconcileLaterScript: the execution reconciling the current attempt found
-- it undecided (the message is absent but could still land); the attempt stays
-- sending, its lease now ends at the next check (later or sooner than it did),
-- and the record says why and when.
--
--  KEYS[1] record
--  ARGV[7] send_id  ARGV[8] token  ARGV[9] next check after ms (on the lease clock)
--  ARGV[10] lands until ms (lease clock)  ARGV[11] "1" = this read found the message absent
--  ARGV[12] why  ARGV[13] reason
--
-- Reply: {code[, next check ms]}; code ok | not_found | final | stale_attempt.

local id, token = ARGV[7], ARGV[8]
local rk = KEYS[1]
local r = hmget(rk, {'hi', 'state', 'attempt_token', 'attempts', 'reconcile_absent'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if not attempt_owner(r, token, false) then return {'stale_attempt'} end
local s = str(lease_now() + tonumber(ARGV[9]))
local absent = num(r, 'reconcile_absent')
if ARGV[11] == '1' then absent = absent + 1 end
redis.call('HSET', rk, 'lease_until_ms', s, 'updated_ms', NOW_S, 'reconcile_absent', str(absent),
  'reconcile_lands_ms', ARGV[10], 'reconcile_next_ms', s, 'reconcile_why', ARGV[12])
relet(id, s)
event(id, r.hi, 'sending', ARGV[13], '', num(r, 'attempts'), ARGV[12])
return {'ok', s}
