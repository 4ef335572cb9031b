-- endCallScript: the owner of the current attempt declares its sending call
-- over with the outcome unknown. The lease ends at reconcile at (never later
-- than it did), so a BeginAttempt from then on reconciles, and the watch (when
-- not in the outbox) and {p}:leases (when a member) follow the new lease end.
--
--  KEYS[1] record
--  ARGV[7] send_id  ARGV[8] token  ARGV[9] reconcile after ms (on the lease clock)  ARGV[10] reason
--
-- Reply: {code}; code ok | not_found | final | stale_attempt.

local id, token = ARGV[7], ARGV[8]
local rk = KEYS[1]
local r = hmget(rk, {'hi', 'state', 'attempt_token', 'lease_until_ms', 'attempts'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if not attempt_owner(r, token, false) then return {'stale_attempt'} end
local lease_until = math.min(num(r, 'lease_until_ms'), lease_now() + tonumber(ARGV[9]))
local s = str(lease_until)
redis.call('HSET', rk, 'lease_until_ms', s, 'updated_ms', NOW_S)
-- a send the watchdog re-scheduled is in the outbox, not in leases: its
-- watch score is its outbox time, and it stays out of leases
relet(id, s)
event(id, r.hi, 'sending', ARGV[10], '', num(r, 'attempts'), 'reconcile at ' .. iso_ms(lease_until))
return {'ok'}
