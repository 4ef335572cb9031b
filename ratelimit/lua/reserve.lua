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
local NKEYS = #KEYS

-- Slots at or before FLOOR no longer count (common.lua ignores them). They are
-- removed when FLOOR has moved an hour past the last trim ("tr" in the account
-- hash: the FLOOR of the last trim), not on every call: a zset holds at most
-- an hour of slots more than its windows, and the common call trims nothing.
-- A clock behind the last trim's trims too (removing what it ignores is exact).
local h = redis.call('HMGET', A, 'pen', 'lr', 'lc', 'seq', 'tr', 'xp')
local pen = tonumber(h[1]) or 0
local lr = tonumber(h[2])
local lc = tonumber(h[3])
local tr = tonumber(h[5])
local trimmed = nil
if not tr or FLOOR < tr or FLOOR >= tr + HOUR then
  redis.call('ZREMRANGEBYSCORE', U, '-inf', fmt(FLOOR))
  redis.call('ZREMRANGEBYSCORE', C, '-inf', fmt(FLOOR))
  trimmed = fmt(FLOOR)
end
-- A consumed slot is remembered a little while, so that a send a guard then
-- refuses (nothing sent) can give it back (Refund).
-- The account hash keeps when a slot was last consumed (lc), by which member
-- (lcm) and the consumption before it (plc), so that a Refund of that member
-- can put lc back. consumed adds these fields to hs (field, value, ...), the
-- arguments of the call's one HSET of the account hash. The trim point is
-- recorded only by a call that writes the hash anyway (one that returns early
-- trims again next time), so no call creates the hash without its life.
local function consumed(hs, slot, seq)
  redis.call('SET', USED, fmt(slot) .. ':' .. seq .. ':' .. ACCT, 'PX', USED_TTL)
  local prev = ''
  if lc then prev = fmt(lc) end
  local n = #hs
  hs[n + 1], hs[n + 2], hs[n + 3], hs[n + 4], hs[n + 5], hs[n + 6] =
    'lc', fmt(NOW), 'lcm', SEND .. '#' .. seq, 'plc', prev
  if trimmed then hs[n + 7], hs[n + 8] = 'tr', trimmed end
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
        local hs = {}
        consumed(hs, slot, seq)
        redis.call('HSET', A, unpack(hs))
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
    for i = 6, NKEYS do
      if tonumber(redis.call('GET', KEYS[i])) == slot then redis.call('DEL', KEYS[i]) end
    end
  end
  redis.call('DEL', R)
end

local t, why, after, before = earliest(U, C, JITTER, IS_NEW, pen, lr, lc)
if not t then return redis.error_reply('ratelimit: slot search failed: ' .. why) end
if why_new then why = why_new .. ':' .. why end
if t > NOW + HORIZON then return {2, NOW + HORIZON, why} end
-- The recipient cooldown binds this send only: it must not hold a slot (and
-- with it every later send of its lane) until the cooldown ends. It comes back
-- then, holding nothing meanwhile.
local rb = 0
for i = 6, NKEYS do
  local v = tonumber(redis.call('GET', KEYS[i]))
  if v and v + L.cooldown > rb then rb = v + L.cooldown end
end
if rb > t then return {2, rb, 'recipient_cooldown'} end

-- HINCRBY's increment, read by the HMGET above (one atomic script)
local seq = (tonumber(h[4]) or 0) + 1
local member = SEND .. '#' .. seq
local life = fmt(t - NOW + DAY + HOUR)
-- Key lives. The slots zset and the account hash must each live a day and an
-- hour past the account's latest slot (the hash also past its penalty, which
-- no slot precedes: t >= pen). They are set together, an hour ahead: to the
-- life of a slot at xp, an hour after the latest slot, xp kept in the hash.
-- A later slot at or before xp needs nothing more, so the usual Reserve sets
-- no life: the keys live at least a day and an hour past every slot (and at
-- most an hour longer). Lives are set anew when t passes xp, when the hash
-- has no xp (it is new, or lost its fields), and when the account has no
-- other live slot (the zset may be new: ZADD gives it no life); xp never
-- moves back, so a life set anew is never shorter than the one before.
-- Lives set by different calls compare on one clock: Redis's (RedisClock,
-- the daemon's), or a caller's clock that does not run slower than Redis's.
-- Penalize only lengthens the hash's life; Cancel and Refund leave lives alone.
local xp = tonumber(h[6])
local relive = not xp or t > xp or (after == nil and before == nil)
if relive then
  local top = t
  if xp and xp - HOUR > top then top = xp - HOUR end
  if after then
    -- slots after t (the hash lost its xp): the latest of them
    local last = last_of(U)
    if last and last > top then top = last end
  end
  xp = top + HOUR
end
local hs = {'seq', fmt(seq)}
redis.call('ZADD', U, fmt(t), member)
if IS_NEW then
  -- few calls (the new-chat caps): the new-chat zset's life is set every time
  redis.call('ZADD', C, fmt(t), member)
  redis.call('PEXPIRE', C, life)
else
  hs[3], hs[4] = 'lr', fmt(t)
end
for i = 6, NKEYS do
  redis.call('SET', KEYS[i], fmt(t), 'PX', fmt(t - NOW + L.cooldown))
end
local go = t <= NOW
if go then consumed(hs, t, seq) end
local n = #hs
if trimmed and not go then hs[n + 1], hs[n + 2], n = 'tr', trimmed, n + 2 end
if relive then hs[n + 1], hs[n + 2] = 'xp', fmt(xp) end
redis.call('HSET', A, unpack(hs))
if relive then
  local xlife = fmt(xp - NOW + DAY + HOUR)
  redis.call('PEXPIRE', U, xlife)
  redis.call('PEXPIRE', A, xlife)
end
if go then return {0, t, why} end
redis.call('SET', R, fmt(t) .. ':' .. seq .. ':' .. ACCT, 'PX', life)
return {1, t, why}
