-- reserveScript takes or looks up the slot of one send.
--
--  KEYS[1] slots zset    KEYS[2] new-chat zset    KEYS[3] account hash    KEYS[4] the send's reservation
--  KEYS[5] the send's last consumed slot (for Refund)   KEYS[6..] recipient keys (only when the cooldown is on)
--  ARGV[1..10] limits and now (see above)   ARGV[11] jitter (ms)   ARGV[12] chats_create (0|1)
--  ARGV[13] horizon (ms)   ARGV[14] late grace (ms, -1 = never forfeit)   ARGV[15] send id   ARGV[16] account id
--  ARGV[17] how long a consumed slot stays refundable (ms)
--
-- Reply {code, t, why}: code 0 go now (t: the slot consumed), 1 wait until t
-- (the send holds slot t), 2 ask again at t, holding nothing (no slot within
-- the horizon, or the recipient's cooldown runs until t); an error reply if
-- the search fails (a bug: it is bounded and always has the timeline's end).

local JITTER = tonumber(ARGV[11])
local IS_NEW = ARGV[12] == '1'
local HORIZON = tonumber(ARGV[13])
local GRACE = tonumber(ARGV[14])
local SEND, ACCT = ARGV[15], ARGV[16]
local USED_TTL = ARGV[17]
local U, C, A, R, USED = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local rkeys = {}
for i = 6, #KEYS do rkeys[#rkeys + 1] = KEYS[i] end

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
-- A consumed slot is remembered a little while, so that a send a guard then
-- refuses (nothing sent) can give it back (Refund).
-- The account hash keeps when a slot was last consumed (lc), by which member
-- (lcm) and the consumption before it (plc), so that a Refund of that member
-- can put lc back.
local function consumed(slot, seq)
  redis.call('SET', USED, fmt(slot) .. ':' .. seq .. ':' .. ACCT, 'PX', USED_TTL)
  local prev = ''
  if lc then prev = fmt(lc) end
  redis.call('HSET', A, 'lc', fmt(NOW), 'lcm', SEND .. '#' .. seq, 'plc', prev)
end

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
