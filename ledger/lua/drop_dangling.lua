-- dropDanglingScript removes index entries whose record no longer exists.
--
--  KEYS[1] index zset
--  ARGV[7..] pairs of send_id, seq
--
-- Reply: number removed.

local n = 0
for i = 7, #ARGV - 1, 2 do
  local id, seq = ARGV[i], ARGV[i + 1]
  if redis.call('EXISTS', k_send(id)) == 0 then
    local s = redis.call('ZSCORE', KEYS[1], id)
    if s and tonumber(s) == tonumber(seq) then
      n = n + redis.call('ZREM', KEYS[1], id)
    end
  end
end
return n
