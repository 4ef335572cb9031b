-- expireScript expires pending sends whose deadline passed.
--
--  KEYS[1] results stream  KEYS[2] deadlines
--  ARGV[7] limit
--
-- Reply: the expired send ids.

local ids = redis.call('ZRANGE', KEYS[2], '-inf', NOW_S, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[7]))
local out = {}
for _, id in ipairs(ids) do
  local r = hmget(k_send(id), {'deadline_ms', unpack(FINISH_FIELDS)})
  if get(r, 'state') == 'pending_approval' and num(r, 'deadline_ms') <= NOW then
    expire_pending(id, r)
    out[#out + 1] = id
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
