-- queueAfterScript returns up to ARGV[3] members of the deadline index with
-- their scores, after (score ARGV[1], member ARGV[2]) in zset order (score,
-- then member), in one atomic read: the cursor's rank is found and the
-- range read in the same script, so no send moves between the two.
--
--  KEYS[1] deadlines  ARGV[1] score ("" = start)  ARGV[2] member  ARGV[3] count
--  (not the ledger's common ARGV: a read of one key)
--
-- Reply: {member, score, ...}, at most ARGV[3] pairs.

local n = tonumber(ARGV[3])
if ARGV[1] == '' then
  return redis.call('ZRANGE', KEYS[1], 0, n - 1, 'WITHSCORES')
end
local score, member = tonumber(ARGV[1]), ARGV[2]
local s = redis.call('ZSCORE', KEYS[1], member)
if s and tonumber(s) == score then
  local r = redis.call('ZRANK', KEYS[1], member)
  return redis.call('ZRANGE', KEYS[1], r + 1, r + n, 'WITHSCORES')
end
-- The cursor's send left the queue: start at its score and skip the
-- members of that score sorting before it.
local start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1])
for _ = 1, 50 do
  local got = redis.call('ZRANGE', KEYS[1], start, start + n - 1, 'WITHSCORES')
  local out = {}
  for i = 1, #got, 2 do
    if tonumber(got[i + 1]) > score or got[i] > member then
      out[#out + 1] = got[i]
      out[#out + 1] = got[i + 1]
    end
  end
  if #out > 0 or #got < 2 * n then return out end
  start = start + n
end
return {}
