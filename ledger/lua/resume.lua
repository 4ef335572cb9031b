-- resumeScript turns a kill switch off (first call) and moves up to a batch
-- of the scope's held sends to the outbox with a new release generation.
--
--  KEYS[1] paused:global or paused:accounts  KEYS[2] the scope's held set
--  ARGV[7] account ("" = global)  ARGV[8] by  ARGV[9] batch  ARGV[10] "1" on the first call
--
-- Reply: number of sends moved, or -1 if the scope was paused again meanwhile.

local acct, by = ARGV[7], ARGV[8]
local paused
if acct == '' then
  paused = redis.call('EXISTS', KEYS[1]) == 1
else
  paused = redis.call('SISMEMBER', KEYS[1], acct) == 1
end
if ARGV[10] == '1' then
  if paused then
    if acct == '' then redis.call('DEL', KEYS[1]) else redis.call('SREM', KEYS[1], acct) end
    local scope = 'global'
    if acct ~= '' then scope = 'account' end
    audit('resumed', {'scope', scope, 'account_id', acct, 'by', by})
  end
elseif paused then
  return -1
end
local ids = redis.call('SPOP', KEYS[2], tonumber(ARGV[9]))
for _, id in ipairs(ids) do
  local rk = k_send(id)
  local r = hmget(rk, {'hi', 'state', 'gen', 'account', 'seq'})
  if get(r, 'state') == 'waiting' then
    hset(rk, r, {'gen', num(r, 'gen') + 1, 'wait_until_ms', NOW_S, 'updated_ms', NOW_S})
    move(id, get(r, 'account'), get(r, 'seq'), 'waiting', 'waiting', {outbox = NOW_S, watch = NOW_S})
    event(id, r.hi, 'waiting', 'paused', by, 0, 'released by resume')
  end
end
return #ids
