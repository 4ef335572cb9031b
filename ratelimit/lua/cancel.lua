-- cancelScript frees the slot of a send that will not go out, if the slot is
-- still in the future.
--
--  KEYS[1] the send's reservation   KEYS[2] slots zset   KEYS[3] new-chat zset   KEYS[4] account hash
--  KEYS[5..] recipient keys
--  ARGV[1] now (ms)   ARGV[2] send id   ARGV[3] account id
--
-- Reply: 1 freed, 0 nothing to free.

local held = redis.call('GET', KEYS[1])
if not held then return 0 end
local s, seq, acct = string.match(held, '^(%-?%d+):(%d+):(.*)$')
local slot = tonumber(s)
if not slot or acct ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[1])
if slot <= tonumber(ARGV[1]) then return 0 end
local member = ARGV[2] .. '#' .. seq
redis.call('ZREM', KEYS[2], member)
redis.call('ZREM', KEYS[3], member)
-- the last reply moves back to the latest slot left at or before it
local lr = tonumber(redis.call('HGET', KEYS[4], 'lr'))
if lr and slot >= lr then
  local r = redis.call('ZREVRANGEBYSCORE', KEYS[2], string.format('%.0f', slot), '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if r[2] then redis.call('HSET', KEYS[4], 'lr', r[2]) else redis.call('HDEL', KEYS[4], 'lr') end
end
for i = 5, #KEYS do
  if tonumber(redis.call('GET', KEYS[i])) == slot then redis.call('DEL', KEYS[i]) end
end
return 1
