-- breakerCheckScript reads an account's breaker and, when it is open and the last probe is
-- older than the probe interval, claims the probe for the caller.
--
--  KEYS[1] breaker   ARGV[1] now (ms)   ARGV[2] probe interval (ms)   ARGV[3] key TTL (ms)
--
-- Reply {0} closed; {1, status, since_ms} open; {2, status, since_ms} open and the caller probes.

if redis.call('HGET', KEYS[1], 'open') ~= '1' then return {0} end
local h = redis.call('HMGET', KEYS[1], 'status', 'since_ms', 'probe_ms')
local now = tonumber(ARGV[1])
local probe = tonumber(h[3]) or 0
if now - probe >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'probe_ms', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {2, h[1] or '', h[2] or '0'}
end
return {1, h[1] or '', h[2] or '0'}
