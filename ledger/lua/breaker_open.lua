-- breakerOpenScript opens an account's breaker (an unhealthy status was seen). Already open: the
-- status is updated, nothing announced.
--
--  KEYS[1] breaker   KEYS[2] results stream   ARGV: see open_breaker in lib.lua
--
-- Reply 1 opened (the caller announces), 0 already open.

if redis.call('HGET', KEYS[1], 'open') == '1' then
  redis.call('HSET', KEYS[1], 'status', ARGV[2])
  return 0
end
open_breaker()
return 1
