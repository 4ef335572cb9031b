-- deferScript parks a send in state waiting until a time, in the outbox with
-- a new release generation; a send with a stop request (see stopScript) is
-- ended as requested instead (the reply is ok all the same).
--
--  KEYS[1] results stream  KEYS[2] record
--  ARGV[7] send_id  ARGV[8] token ("" = no attempt)  ARGV[9] until ms  ARGV[10] reason  ARGV[11] until RFC 3339
--
-- Reply: {code}; code ok | not_found | final | stale_attempt.

local id, token = ARGV[7], ARGV[8]
local rk = KEYS[2]
local r = hmget(rk, {'hi', 'state', 'attempt_token', 'lease_until_ms', 'account', 'seq', 'gen',
  'stop_state', 'stop_by', 'stop_note', 'stop_ms'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if not attempt_owner(r, token, true) then return {'stale_attempt'} end
if get(r, 'stop_state') ~= '' then
  finish_stopped(id, rk, r, 'stop requested while sending; not delivered')
  return {'ok'}
end
local acct = get(r, 'account')
hset(rk, r, {'gen', num(r, 'gen') + 1, 'state', 'waiting', 'wait_until_ms', ARGV[9], 'wait_reason', ARGV[10],
  'updated_ms', NOW_S})
hdel(rk, r, {'attempt_token', 'lease_until_ms'})
move(id, acct, get(r, 'seq'), st, 'waiting', {outbox = ARGV[9], watch = ARGV[9]})
event(id, r.hi, 'waiting', ARGV[10], '', 0, 'until ' .. ARGV[11])
return {'ok'}
