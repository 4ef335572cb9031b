-- dueScript lists outbox entries due now, dropping entries of sends that are
-- no longer approved, waiting or sending (a sending send is in the outbox only
-- when RecoverStuck re-scheduled it; its next execution reconciles).
--
--  KEYS[1] outbox
--  ARGV[7] limit
--
-- Reply: flat list of {send_id, gen, digest, operation, account, score ms}.

local due = redis.call('ZRANGE', KEYS[1], '-inf', NOW_S, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[7]), 'WITHSCORES')
local out = {}
for i = 1, #due, 2 do
  local id, score = due[i], due[i + 1]
  local r = hmget(k_send(id), {'state', 'gen', 'digest', 'op', 'account'})
  local st = get(r, 'state')
  if st == 'approved' or st == 'waiting' or st == 'sending' then
    out[#out + 1] = id
    out[#out + 1] = get(r, 'gen')
    out[#out + 1] = get(r, 'digest')
    out[#out + 1] = get(r, 'op')
    out[#out + 1] = get(r, 'account')
    out[#out + 1] = score
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', k_watch(), id)
  end
end
return out
