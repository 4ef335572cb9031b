package ratelimit

import "github.com/redis/go-redis/v9"

// Every script of the limiter. The per-account scripts are luaCommon (time
// units, limits, the slot search) + their own body. Times are Unix
// milliseconds chosen by the Go caller (the injected clock), or, with
// Options.RedisClock (the daemon's setting), the Redis server's TIME, so that
// replicas whose clocks differ still space their calls on one clock; key TTLs
// are relative (PEXPIRE), so a simulated clock ahead of or behind the
// server's cannot expire keys early.
//
// The per-account scripts take the account's limits as ARGV[1..9]
// (Limiter.limitArgs):
//
//	ARGV[1] min interval (ms)   ARGV[2] hourly cap            ARGV[3] daily cap
//	ARGV[4] new-chat hourly cap ARGV[5] new-chat daily cap    ARGV[6] recipient cooldown (ms)
//	ARGV[7] warm-up start       ARGV[8] warm-up step          ARGV[9] account created (ms, -1 unknown)
//
// and ARGV[10] now (ms; -1: Redis's TIME). A cap of 0 means no cap.

// luaCommon: limits, window counts and the search of the earliest slot.
//
// An account has two lanes on one timeline (the slots zset U): new chats
// (also in zset C) and everything else ("replies"). Each lane only grows at
// its end: a new chat goes after every slot of the account, a reply after the
// last reply ("lr" in the account hash). So a reply may land before new chats
// queued for later (their tighter caps must not hold replies back), but
// nothing else can be after a candidate time t. The checks at t are then a
// fixed number of O(log n) ZCOUNT/rank lookups: spacing to the neighbours,
// the windows ending at t, and, for a reply, the windows ending at the few
// new chats within a day after t (the only windows holding t whose count can
// rise after t). When a check fails, t jumps to the first time that check can
// pass, never past a valid slot.
const luaCommon = `
local HOUR = 3600000
local DAY = 86400000
-- a reply checks at most this many queued new chats of the next day; beyond,
-- it goes to the end of the timeline (always valid)
local FUTURE_MAX = 64

local L = {
  min_interval = tonumber(ARGV[1]), hourly = tonumber(ARGV[2]), daily = tonumber(ARGV[3]),
  nc_hourly = tonumber(ARGV[4]), nc_daily = tonumber(ARGV[5]), cooldown = tonumber(ARGV[6]),
  warm_start = tonumber(ARGV[7]), warm_step = tonumber(ARGV[8]), created = tonumber(ARGV[9]),
}
local NOW = tonumber(ARGV[10])
if NOW < 0 then
  -- Options.RedisClock: every replica's slots on the one clock of Redis
  local tm = redis.call('TIME')
  NOW = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
end

-- integers as plain digits (Lua's tostring switches to exponents past 14 digits)
local function fmt(n) return string.format('%.0f', n) end

local function score(r)
  if r[2] then return tonumber(r[2]) end
  return nil
end

-- the latest score <= x, or nil
local function last_upto(key, x)
  return score(redis.call('ZREVRANGEBYSCORE', key, fmt(x), '-inf', 'WITHSCORES', 'LIMIT', 0, 1))
end

-- the latest score, or nil
local function last_of(key)
  return score(redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES'))
end

-- the earliest score > x, or nil
local function first_after(key, x)
  return score(redis.call('ZRANGEBYSCORE', key, '(' .. fmt(x), '+inf', 'WITHSCORES', 'LIMIT', 0, 1))
end

-- members in (x - win, x]
local function count_in(key, x, win)
  return redis.call('ZCOUNT', key, '(' .. fmt(x - win), fmt(x))
end

-- the k-th latest score <= x (k >= 1), by rank: O(log n) for any k
local function kth_upto(key, x, k)
  local n = redis.call('ZCOUNT', key, '-inf', fmt(x))
  if n < k then return nil end
  return score(redis.call('ZRANGE', key, n - k, n - k, 'WITHSCORES'))
end

-- warm-up day of t (0 = the account's first day), or nil without warm-up
local function warm_day(t)
  if L.warm_start <= 0 or L.created < 0 then return nil end
  local d = math.floor((t - L.created) / DAY)
  if d < 0 then d = 0 end
  return d
end

-- the daily cap in force at t, and whether warm-up (not DAILY_CAP) sets it
local function daily_cap_at(t)
  local d = warm_day(t)
  if d == nil then return L.daily, false end
  local w = L.warm_start + d * L.warm_step
  if L.daily > 0 and L.daily <= w then return L.daily, false end
  return w, true
end

-- nil if a send at t breaks no limit; else the next candidate time and the
-- limit broken. U: all slots, C: new-chat slots.
local function violation(U, C, t, jitter, is_new)
  local mi = L.min_interval
  local p = last_upto(U, t)
  if p and t < p + mi + jitter then return p + mi + jitter, 'min_interval' end
  local q = first_after(U, t)
  if q and q < t + mi then return q + mi + jitter, 'min_interval' end
  if L.hourly > 0 and count_in(U, t, HOUR) >= L.hourly then
    return kth_upto(U, t, L.hourly) + HOUR, 'hourly_cap'
  end
  local cap, warm = daily_cap_at(t)
  if cap > 0 and count_in(U, t, DAY) >= cap then
    local b = kth_upto(U, t, cap) + DAY
    if warm then
      -- the next day's cap is higher: its start may already be free
      local nd = L.created + (warm_day(t) + 1) * DAY
      if nd < b then b = nd end
      return b, 'warmup'
    end
    return b, 'daily_cap'
  end
  if is_new then
    if L.nc_hourly > 0 and count_in(C, t, HOUR) >= L.nc_hourly then
      return kth_upto(C, t, L.nc_hourly) + HOUR, 'new_chats_hourly_cap'
    end
    if L.nc_daily > 0 and count_in(C, t, DAY) >= L.nc_daily then
      return kth_upto(C, t, L.nc_daily) + DAY, 'new_chats_daily_cap'
    end
    return nil
  end
  -- A reply before queued new chats: the windows ending at each of them hold t too.
  if not q or (L.hourly <= 0 and cap <= 0) then return nil end
  -- Cheap common case: fewer slots within a window's length on either side of t
  -- than the cap (the cap after t is never lower) means no window holding t is full.
  local check_hour = L.hourly > 0 and count_in(U, t + HOUR - 1, 2 * HOUR - 1) >= L.hourly
  local check_day = cap > 0 and count_in(U, t + DAY - 1, 2 * DAY - 1) >= cap
  if not check_hour and not check_day then return nil end
  local span = HOUR
  if check_day then span = DAY end
  local cs = redis.call('ZRANGEBYSCORE', C, '(' .. fmt(t), '(' .. fmt(t + span), 'WITHSCORES', 'LIMIT', 0, FUTURE_MAX + 1)
  if #cs > 2 * FUTURE_MAX then return -1, 'crowded' end
  for i = 2, #cs, 2 do
    local c = tonumber(cs[i])
    if check_hour and c < t + HOUR and count_in(U, c, HOUR) >= L.hourly then
      return c + mi + jitter, 'hourly_cap'
    end
    if check_day then
      local ccap, cwarm = daily_cap_at(c)
      if count_in(U, c, DAY) >= ccap then
        if cwarm then return c + mi + jitter, 'warmup' end
        return c + mi + jitter, 'daily_cap'
      end
    end
  end
  return nil
end

-- the earliest slot time >= NOW for a new send of the account, and the name of
-- the limit that decided it ('none': now); nil, reason if the search fails.
-- lc is when the account's last slot was consumed (a call went out then): the
-- planned slots are spaced, and so must the calls be, even when sends consume
-- their slots late.
local function earliest(U, C, jitter, is_new, pen, lr, lc)
  local t, why = NOW, 'none'
  local function raise(v, w)
    if v and v > t then t, why = v, w end
  end
  raise(pen, 'penalty')
  if lc then raise(lc + L.min_interval + jitter, 'min_interval') end
  if is_new then
    local last = last_of(U)
    if last then raise(last + L.min_interval + jitter, 'min_interval') end
  elseif lr then
    raise(lr + L.min_interval + jitter, 'min_interval')
  end
  local tail = is_new
  for _ = 1, 48 do
    local nt, w = violation(U, C, t, jitter, is_new)
    if not nt then return t, why end
    if nt < 0 then
      -- too many new chats to weave through: the end of the timeline is always valid
      if tail then return nil, w end
      tail = true
      local last = last_of(U)
      if last then raise(last + L.min_interval + jitter, 'min_interval') end
    elseif nt <= t then
      return nil, 'no_progress'
    else
      t, why = nt, w
    end
  end
  return nil, 'too_many_steps'
end
`

// reserveScript takes or looks up the slot of one send.
//
//	KEYS[1] slots zset    KEYS[2] new-chat zset    KEYS[3] account hash    KEYS[4] the send's reservation
//	KEYS[5] the send's last consumed slot (for Refund)   KEYS[6..] recipient keys (only when the cooldown is on)
//	ARGV[1..10] limits and now (see above)   ARGV[11] jitter (ms)   ARGV[12] chats_create (0|1)
//	ARGV[13] horizon (ms)   ARGV[14] late grace (ms, -1 = never forfeit)   ARGV[15] send id   ARGV[16] account id
//	ARGV[17] how long a consumed slot stays refundable (ms)
//
// Reply {code, t, why}: code 0 go now (t: the slot consumed), 1 wait until t
// (the send holds slot t), 2 ask again at t, holding nothing (no slot within
// the horizon, or the recipient's cooldown runs until t); an error reply if
// the search fails (a bug: it is bounded and always has the timeline's end).
var reserveScript = redis.NewScript(luaCommon + `
local JITTER = tonumber(ARGV[11])
local IS_NEW = ARGV[12] == '1'
local HORIZON = tonumber(ARGV[13])
local GRACE = tonumber(ARGV[14])
local SEND, ACCT = ARGV[15], ARGV[16]
local USED_TTL = ARGV[17]
local U, C, A, R, USED = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rkeys = {}
for i = 6, #KEYS do rkeys[#rkeys + 1] = KEYS[i] end
-- A consumed slot is remembered a little while, so that a send a guard then
-- refuses (nothing sent) can give it back (Refund).
-- The account hash keeps when a slot was last consumed (lc), by which member
-- (lcm) and the consumption before it (plc), so that a Refund of that member
-- can put lc back.
local function consumed(slot, seq)
  redis.call('SET', USED, fmt(slot) .. ':' .. seq .. ':' .. ACCT, 'PX', USED_TTL)
  local prev = redis.call('HGET', A, 'lc')
  if prev then redis.call('HSET', A, 'plc', prev) else redis.call('HDEL', A, 'plc') end
  redis.call('HSET', A, 'lc', fmt(NOW), 'lcm', SEND .. '#' .. seq)
end

-- PEXPIRE that only ever lengthens a key's life
local function keep(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, fmt(ms)) end
end

-- Windows look back at most a day from NOW: older slots never count again.
redis.call('ZREMRANGEBYSCORE', U, '-inf', fmt(NOW - DAY))
if IS_NEW then redis.call('ZREMRANGEBYSCORE', C, '-inf', fmt(NOW - DAY)) end
local h = redis.call('HMGET', A, 'pen', 'lr', 'lc')
local pen = tonumber(h[1]) or 0
local lr = tonumber(h[2])
local lc = tonumber(h[3])

local held = redis.call('GET', R)
local why_new = nil
if held then
  local s, seq, acct = string.match(held, '^(%-?%d+):(%d+):(.*)$')
  local slot = tonumber(s)
  if slot and acct == ACCT then
    if slot >= pen then
      if slot > NOW then return {1, slot, 'reserved'} end
      -- A slot reached late must not put this call within MinInterval of the
      -- account's last call (another late send may have just consumed its own).
      local spaced = not lc or NOW >= lc + L.min_interval
      if (GRACE < 0 or NOW - slot <= GRACE) and spaced then
        redis.call('DEL', R)
        consumed(slot, seq)
        return {0, slot, 'reserved'}
      end
      why_new = 'late'
    else
      why_new = 'penalized'
    end
    -- Forfeit: a slot inside a later penalty, or one consumed too late (an
    -- outage would otherwise release a burst of overdue sends at once). The
    -- send gets a fresh slot.
    local member = SEND .. '#' .. seq
    redis.call('ZREM', U, member)
    redis.call('ZREM', C, member)
    if lr and slot >= lr then
      lr = last_upto(U, slot)
      if lr then redis.call('HSET', A, 'lr', fmt(lr)) else redis.call('HDEL', A, 'lr') end
    end
    for _, rk in ipairs(rkeys) do
      if tonumber(redis.call('GET', rk)) == slot then redis.call('DEL', rk) end
    end
  end
  redis.call('DEL', R)
end

local t, why = earliest(U, C, JITTER, IS_NEW, pen, lr, lc)
if not t then return redis.error_reply('ratelimit: slot search failed: ' .. why) end
if why_new then why = why_new .. ':' .. why end
if t > NOW + HORIZON then return {2, NOW + HORIZON, why} end
-- The recipient cooldown binds this send only: it must not hold a slot (and
-- with it every later send of its lane) until the cooldown ends. It comes back
-- then, holding nothing meanwhile.
local rb = 0
for _, rk in ipairs(rkeys) do
  local v = tonumber(redis.call('GET', rk))
  if v and v + L.cooldown > rb then rb = v + L.cooldown end
end
if rb > t then return {2, rb, 'recipient_cooldown'} end

local seq = redis.call('HINCRBY', A, 'seq', 1)
local member = SEND .. '#' .. seq
local life = t - NOW + DAY + HOUR
redis.call('ZADD', U, fmt(t), member)
keep(U, life)
if IS_NEW then
  redis.call('ZADD', C, fmt(t), member)
  keep(C, life)
else
  redis.call('HSET', A, 'lr', fmt(t))
end
keep(A, math.max(t, pen) - NOW + DAY + HOUR)
for _, rk in ipairs(rkeys) do
  redis.call('SET', rk, fmt(t), 'PX', fmt(t - NOW + L.cooldown))
end
if t <= NOW then
  consumed(t, seq)
  return {0, t, why}
end
redis.call('SET', R, fmt(t) .. ':' .. seq .. ':' .. ACCT, 'PX', fmt(life))
return {1, t, why}
`)

// forecastScript reads an account's state without changing it.
//
//	KEYS[1] slots zset    KEYS[2] new-chat zset    KEYS[3] account hash
//	ARGV[1..10] limits and now (see above)
//
// Reply {next, why, next new chat, why, last slot (-1 none), slots in the last
// hour, day, new chats in the last hour, day, slots queued after now, new
// chats queued, penalty until (0 none), daily cap now}.
var forecastScript = redis.NewScript(luaCommon + `
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
`)

// penalizeScript moves an account's penalty (no slot before it) later, never
// earlier.
//
//	KEYS[1] account hash
//	ARGV[1] now (ms)   ARGV[2] until (ms)
//
// Reply: the penalty in force (ms).
var penalizeScript = redis.NewScript(`
local now, till = tonumber(ARGV[1]), tonumber(ARGV[2])
local pen = tonumber(redis.call('HGET', KEYS[1], 'pen')) or 0
if till <= pen then return pen end
redis.call('HSET', KEYS[1], 'pen', string.format('%.0f', till))
local life = till - now + 90000000
if redis.call('PTTL', KEYS[1]) < life then redis.call('PEXPIRE', KEYS[1], string.format('%.0f', life)) end
return till
`)

// cancelScript frees the slot of a send that will not go out, if the slot is
// still in the future.
//
//	KEYS[1] the send's reservation   KEYS[2] slots zset   KEYS[3] new-chat zset   KEYS[4] account hash
//	KEYS[5..] recipient keys
//	ARGV[1] now (ms)   ARGV[2] send id   ARGV[3] account id
//
// Reply: 1 freed, 0 nothing to free.
var cancelScript = redis.NewScript(`
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
`)

// refundScript gives back the slot of a send that a guard refused after it
// took the slot: the slot it holds (future or past), or the one it consumed
// last. The caller vouches that no provider call was made with it.
//
//	KEYS[1] the send's reservation   KEYS[2] its last consumed slot   KEYS[3] slots zset
//	KEYS[4] new-chat zset   KEYS[5] account hash   KEYS[6..] recipient keys
//	ARGV[1] send id   ARGV[2] account id
//
// Reply: 1 given back, 0 nothing to give back.
var refundScript = redis.NewScript(`
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
  if c[2] then redis.call('HSET', KEYS[5], 'lc', c[2]) else redis.call('HDEL', KEYS[5], 'lc') end
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
`)

// globalScript is a cluster-wide GCRA in its reserving form: every call takes
// the next emission time and says how long to wait for it, so callers sleep
// once and never retry.
//
//	KEYS[1] global state
//	ARGV[1] now (µs)   ARGV[2] emission interval (µs)   ARGV[3] burst tolerance (µs)
//
// Reply: the wait (µs) before the caller may make its request.
var globalScript = redis.NewScript(`
local now, interval, tol = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tol - now
if wait < 0 then wait = 0 end
local nxt = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', string.format('%.0f', math.floor((nxt - now) / 1000) + 60000))
return wait
`)
