-- forecastScript reads an account's state without changing it.
--
--  KEYS[1] slots zset    KEYS[2] new-chat zset    KEYS[3] account hash
--  ARGV[1..10] limits and now (see above)
--
-- Reply {next, why, next new chat, why, last slot (-1 none), slots in the last
-- hour, day, new chats in the last hour, day, slots queued after now, new
-- chats queued, penalty until (0 none), daily cap now}.

local U, C = KEYS[1], KEYS[2]
local h = redis.call('HMGET', KEYS[3], 'pen', 'lr', 'lc')
local pen = tonumber(h[1]) or 0
local lr = tonumber(h[2])
local lc = tonumber(h[3])
local next, why = earliest(U, C, 0, false, pen, lr, lc)
local next_new, why_new = earliest(U, C, 0, true, pen, lr, lc)
local last = last_of(U) or -1
local function count(key, from, to) return redis.call('ZCOUNT', key, '(' .. fmt(from), to) end
local cap = daily_cap_at(NOW)
return {
  next or -1, why, next_new or -1, why_new, last,
  count(U, NOW - HOUR, fmt(NOW)), count(U, NOW - DAY, fmt(NOW)),
  count(C, NOW - HOUR, fmt(NOW)), count(C, NOW - DAY, fmt(NOW)),
  count(U, NOW, '+inf'), count(C, NOW, '+inf'),
  pen, cap,
}
