-- resolveScript gives a reconciled attempt back: the message clearly did not
-- go out, so the send is approved again (same gen). A safety-net outbox entry
-- at the end of the reconciler's lease re-releases it (same gen, so the same
-- asynq TaskID) should the caller die before its next BeginAttempt. A send
-- with a stop request (see stopScript) is ended as requested instead (reply
-- ok all the same).
--
--  KEYS[1] results stream  KEYS[2] record
--  ARGV[7] send_id  ARGV[8] token
--
-- Reply: {code}; code ok | not_found | final | stale_attempt.

local id, token = ARGV[7], ARGV[8]
local rk = KEYS[2]
local r = hmget(rk, {'hi', 'state', 'attempt_token', 'lease_until_ms', 'account', 'seq', 'attempts',
  'stop_state', 'stop_by', 'stop_note', 'stop_ms'})
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if not attempt_owner(r, token, false) then return {'stale_attempt'} end
if get(r, 'stop_state') ~= '' then
  finish_stopped(id, rk, r, 'stop requested while sending; reconciled: not sent')
  return {'ok'}
end
local lease_until = str(num(r, 'lease_until_ms'))
hset(rk, r, {'state', 'approved', 'updated_ms', NOW_S})
hdel(rk, r, {'attempt_token', 'lease_until_ms'})
move(id, get(r, 'account'), get(r, 'seq'), st, 'approved', {outbox = lease_until, watch = lease_until})
event(id, r.hi, 'approved', '', '', num(r, 'attempts'), 'reconciled: not sent')
return {'ok'}
