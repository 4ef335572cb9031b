-- refundScript gives back the slot of a send that a guard refused after it
-- took the slot: the slot it holds (future or past), or the one it consumed
-- last. The caller vouches that no provider call was made with it.
--
--  KEYS[1] the send's reservation   KEYS[2] its last consumed slot   KEYS[3] slots zset
--  KEYS[4] new-chat zset   KEYS[5] account hash   KEYS[6..] recipient keys
--  ARGV[1] send id   ARGV[2] account id
--
-- Reply: 1 given back, 0 nothing to give back.

local held = redis.call('GET', KEYS[1])
local from = KEYS[1]
if not held then
  held = redis.call('GET', KEYS[2])
  from = KEYS[2]
end
if not held then return 0 end
redis.call('DEL', from)
local s, seq, acct = string.match(held, '^(%-?%d+):(%d+):(.*)$')
local slot = tonumber(s)
if not slot or acct ~= ARGV[2] then return 0 end
local member = ARGV[1] .. '#' .. seq
if redis.call('ZREM', KEYS[3], member) == 0 then return 0 end
redis.call('ZREM', KEYS[4], member)
-- the call this slot was consumed for never happened: the last call is the one before
local c = redis.call('HMGET', KEYS[5], 'lcm', 'plc')
if c[1] == member then
  if c[2] and c[2] ~= '' then redis.call('HSET', KEYS[5], 'lc', c[2]) else redis.call('HDEL', KEYS[5], 'lc') end
  redis.call('HDEL', KEYS[5], 'lcm', 'plc')
end
local lr = tonumber(redis.call('HGET', KEYS[5], 'lr'))
if lr and slot >= lr then
  local r = redis.call('ZREVRANGEBYSCORE', KEYS[3], string.format('%.0f', slot), '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if r[2] then redis.call('HSET', KEYS[5], 'lr', r[2]) else redis.call('HDEL', KEYS[5], 'lr') end
end
for i = 6, #KEYS do
  if tonumber(redis.call('GET', KEYS[i])) == slot then redis.call('DEL', KEYS[i]) end
end
return 1
