-- globalScript is a cluster-wide GCRA in its reserving form: every call takes
-- the next emission time and says how long to wait for it, so callers sleep
-- once and never retry.
--
--  KEYS[1] global state
--  ARGV[1] now (µs)   ARGV[2] emission interval (µs)   ARGV[3] burst tolerance (µs)
--
-- Reply: the wait (µs) before the caller may make its request.

local now, interval, tol = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tol - now
if wait < 0 then wait = 0 end
local nxt = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', string.format('%.0f', math.floor((nxt - now) / 1000) + 60000))
return wait
