-- unfinishedResumesScript finds the scopes whose pause is lifted but whose
-- held set still holds sends (a resume that failed half-way), and forgets the
-- accounts that are not paused and hold nothing.
--
--  KEYS[1] paused:global  KEYS[2] paused:accounts  KEYS[3] held:global  KEYS[4] held:accounts
--  ARGV: only the common ARGV[1..6]
--
-- Reply: {"1" or "0" (the global scope), account ids...}.

-- every paused account is indexed before its resume, including accounts whose
-- sends were held before the index existed
local paused = redis.call('SMEMBERS', KEYS[2])
for i = 1, #paused, 500 do
  redis.call('SADD', KEYS[4], unpack(paused, i, math.min(i + 499, #paused)))
end
local out = {'0'}
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('SCARD', KEYS[3]) > 0 then out[1] = '1' end
for _, a in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('SISMEMBER', KEYS[2], a) == 0 then
    if redis.call('SCARD', k_held_acct(a)) > 0 then
      out[#out + 1] = a
    else
      redis.call('SREM', KEYS[4], a)
    end
  end
end
return out
