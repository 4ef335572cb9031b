-- resolveReviewScript resolves a needs_review send.
--
--  KEYS[1] results stream  KEYS[2] record
--  ARGV[7] send_id  ARGV[8] resolution  ARGV[9] message id (sent)  ARGV[10] by  ARGV[11] note
--
-- Reply: {code}; code ok | not_found | not_in_review | message_claimed.

local id, res, mid, by, note = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local rk = KEYS[2]
local r = hmget(rk, FINISH_FIELDS)
if missing(rk, r) then return {'not_found'} end
if get(r, 'state') ~= 'needs_review' then return {'not_in_review'} end
local seq, acct = get(r, 'seq'), get(r, 'account')
if res == 'sent' then
  local owner = redis.call('GET', k_msg(mid))
  if owner and owner ~= id then return {'message_claimed'} end
end
local decided = {'decided_by', by, 'decided_ms', NOW_S, 'decision_note', note}
if res == 'sent' then
  decided[#decided + 1] = 'message_id'
  decided[#decided + 1] = mid
  finish(id, r, 'sent', 'marked_sent', '', decided, by)
  audit('marked_sent', {'send_id', id, 'by', by, 'account_id', acct, 'message_id', mid, 'note', note})
elseif res == 'cancel' then
  finish(id, r, 'canceled', 'canceled', '', decided, by)
  audit('canceled', {'send_id', id, 'by', by, 'account_id', acct, 'note', note})
else
  -- the implicit history (its final event) is written out before the state changes
  hist_flush(id, r.hi)
  redis.call('PERSIST', rk)
  redis.call('PERSIST', k_history(id))
  local gen = tonumber(redis.call('HGET', rk, 'gen') or '0') + 1
  redis.call('HSET', rk, 'state', 'approved', 'reason', '', 'detail', '', 'updated_ms', NOW_S, 'gen', str(gen))
  redis.call('HDEL', rk, 'finished_ms', 'message_id')
  move(id, acct, seq, 'needs_review', 'approved', {outbox = NOW_S, watch = NOW_S})
  event(id, nil, 'approved', 'marked_not_sent', by, 0, note)
  audit('marked_not_sent', {'send_id', id, 'by', by, 'account_id', acct, 'note', note})
end
return {'ok'}
