-- breakerRefusedScript counts an account-level refusal of a sending call and opens the
-- breaker at the ARGV[7]-th within ARGV[6] ms (status ARGV[2], the slug of that last one).
--
--  KEYS[1] breaker   KEYS[2] results stream   ARGV[1..5]: see open_breaker in lib.lua
--  ARGV[6] window (ms)   ARGV[7] trips
--
-- Reply 1 opened, 0 not (counted, or already open).

if redis.call('HGET', KEYS[1], 'open') == '1' then return 0 end
local now = tonumber(ARGV[1])
local start = tonumber(redis.call('HGET', KEYS[1], 'd401_ms'))
local n = 1
if start and now - start <= tonumber(ARGV[6]) then
  n = redis.call('HINCRBY', KEYS[1], 'd401_n', 1)
else
  redis.call('HSET', KEYS[1], 'd401_ms', ARGV[1], 'd401_n', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
if n < tonumber(ARGV[7]) then return 0 end
open_breaker()
return 1
