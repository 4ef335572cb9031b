-- penalizeScript moves an account's penalty (no slot before it) later, never
-- earlier.
--
--  KEYS[1] account hash
--  ARGV[1] now (ms)   ARGV[2] until (ms)
--
-- Reply: the penalty in force (ms).

local now, till = tonumber(ARGV[1]), tonumber(ARGV[2])
local pen = tonumber(redis.call('HGET', KEYS[1], 'pen')) or 0
if till <= pen then return pen end
redis.call('HSET', KEYS[1], 'pen', string.format('%.0f', till))
local life = till - now + 90000000
if redis.call('PTTL', KEYS[1]) < life then redis.call('PEXPIRE', KEYS[1], string.format('%.0f', life)) end
return till
