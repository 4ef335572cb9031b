-- common.lua, the start of every per-account script: limits, window counts and the search of the earliest slot.
--
-- An account has two lanes on one timeline (the slots zset U): new chats
-- (also in zset C) and everything else ("replies"). Each lane only grows at
-- its end: a new chat goes after every slot of the account, a reply after the
-- last reply ("lr" in the account hash). So a reply may land before new chats
-- queued for later (their tighter caps must not hold replies back), but
-- nothing else can be after a candidate time t. The checks at t are then a
-- fixed number of O(log n) ZCOUNT/rank lookups: spacing to the neighbours,
-- the windows ending at t, and, for a reply, the windows ending at the few
-- new chats within a day after t (the only windows holding t whose count can
-- rise after t). When a check fails, t jumps to the first time that check can
-- pass, never past a valid slot.
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

-- Windows look back at most a day from NOW: a slot at or before FLOOR never
-- counts again. Reserve trims such slots only now and then (lua/reserve.lua),
-- so every read of a slot ignores them: the reads below either return the
-- latest score under a bound (checked against FLOOR here), or look only at
-- scores after NOW - DAY (a window ending at or after NOW, or after t >= NOW).
local FLOOR = NOW - DAY

-- integers as plain digits (Lua's tostring switches to exponents past 14
-- digits), each formatted once per call: string.format costs about as much
-- as a Redis command from Lua, and the same few times (t, NOW) recur
local fmts = {}
local function fmt(n)
  local s = fmts[n]
  if not s then
    s = string.format('%.0f', n)
    fmts[n] = s
  end
  return s
end

local function score(r)
  local s = r[2]
  if s then
    s = tonumber(s)
    if s > FLOOR then return s end
  end
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

-- the k-th latest score <= x (k >= 1), by rank: O(log n) for any k. Untrimmed
-- slots before FLOOR only shift the ranks; callers know the window ending at x
-- (after FLOOR) holds at least k slots.
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

-- nil, the account's earliest slot after t and its latest at or before t
-- (each nil: none) if a send at t breaks no limit; else the next candidate
-- time and the limit broken. U: all slots, C: new-chat slots.
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
    return nil, q, p
  end
  -- A reply before queued new chats: the windows ending at each of them hold t too.
  if not q or (L.hourly <= 0 and cap <= 0) then return nil, q, p end
  -- Cheap common case: fewer slots within a window's length on either side of t
  -- than the cap (the cap after t is never lower) means no window holding t is full.
  local check_hour = L.hourly > 0 and count_in(U, t + HOUR - 1, 2 * HOUR - 1) >= L.hourly
  local check_day = cap > 0 and count_in(U, t + DAY - 1, 2 * DAY - 1) >= cap
  if not check_hour and not check_day then return nil, q, p end
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
  return nil, q, p
end

-- the earliest slot time >= NOW for a new send of the account, the name of
-- the limit that decided it ('none': now), and the account's slots next to
-- it: the earliest after it and the latest at or before it (each nil: none);
-- nil, reason if the search fails.
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
    local nt, w, before = violation(U, C, t, jitter, is_new)
    if not nt then return t, why, w, before end
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
