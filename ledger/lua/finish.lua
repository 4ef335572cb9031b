-- finishScript ends a send with the worker's outcome. A sent new message
-- (new_message_op) whose id another send already owns ({p}:msg:<id> names
-- another send) is refused, nothing changed: one provider message is never
-- attributed to two sends.
--
--  KEYS[1] results stream  KEYS[2] record
--  ARGV[7] send_id  ARGV[8] token ("" = no attempt)  ARGV[9] state  ARGV[10] reason  ARGV[11] detail
--  ARGV[12] message_id  ARGV[13] chat_id  ARGV[14] dry run "1"/"0"
--
-- Reply: {code}; code ok | not_found | final | stale_attempt |
-- message_claimed. ok adds the result JSON and the attempts.

local id, token = ARGV[7], ARGV[8]
local rk = KEYS[2]
local r = hmget(rk, FINISH_FIELDS)
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if not attempt_owner(r, token, true) then return {'stale_attempt'} end
local mid = ARGV[12]
local claimed = false
if ARGV[9] == 'sent' and mid ~= '' and new_message_op(get(r, 'op')) then
  -- the claim, taken in the command that checks it; nothing else has changed if it is another's
  if not redis.call('SET', k_msg(mid), id, 'NX', 'PX', claim_ttl()) then
    if redis.call('GET', k_msg(mid)) ~= id then return {'message_claimed'} end
    redis.call('PEXPIRE', k_msg(mid), claim_ttl())
  end
  claimed = true
end
-- no dry_run "0" over none: the record reads only "1" as a dry run
local extra = {}
if ARGV[14] == '1' or r.dry_run then extra = {'dry_run', ARGV[14]} end
if ARGV[12] ~= '' then extra[#extra + 1] = 'message_id'; extra[#extra + 1] = ARGV[12] end
if ARGV[13] ~= '' then extra[#extra + 1] = 'chat_id'; extra[#extra + 1] = ARGV[13] end
return {'ok', finish(id, r, ARGV[9], ARGV[10], ARGV[11], extra, '', claimed), str(num(r, 'attempts'))}
