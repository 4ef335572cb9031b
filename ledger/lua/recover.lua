-- recoverScript is the watchdog (see RecoverStuck): it re-schedules the
-- watched sends more than a grace late that nothing will move any more.
--
--  KEYS[1] watch  KEYS[2] outbox
--  ARGV[7] grace ms  ARGV[8] limit
--
-- Every watch entry it reads leaves the range it reads (removed, or scored at
-- or after now - grace), so a batch never starves the entries behind it.
--
-- Reply: the re-scheduled send ids.

local cutoff = NOW - tonumber(ARGV[7])
-- leases are judged on their own clock
local lease_cutoff = lease_now() - tonumber(ARGV[7])
local late = redis.call('ZRANGE', KEYS[1], '-inf', string.format('(%d', cutoff), 'BYSCORE',
  'LIMIT', 0, tonumber(ARGV[8]), 'WITHSCORES')
local out = {}
for i = 1, #late, 2 do
  local id, since = late[i], tonumber(late[i + 1])
  local rk = k_send(id)
  local r = hmget(rk, {'hi', 'state', 'account', 'seq', 'lease_until_ms', 'gen', 'attempts'})
  local st, acct = get(r, 'state'), get(r, 'account')
  if st ~= 'approved' and st ~= 'waiting' and st ~= 'sending' then
    -- final, pending or gone: not watched
    redis.call('ZREM', KEYS[1], id)
  elseif st == 'waiting' and (redis.call('SISMEMBER', k_held_global(), id) == 1
    or (acct ~= '' and redis.call('SISMEMBER', k_held_acct(acct), id) == 1)) then
    -- held by a pause (only a waiting send can be): resume releases it
    redis.call('ZREM', KEYS[1], id)
  else
    local queued = redis.call('ZSCORE', KEYS[2], id)
    if queued then
      -- in the outbox: the releaser's backlog, not a lost task; look again later
      redis.call('ZADD', KEYS[1], math.max(tonumber(queued), NOW), id)
    elseif st == 'sending' and num(r, 'lease_until_ms') >= lease_cutoff then
      -- the lease has not been over for a grace yet (scored out of the range read, even when
      -- the lease clock is behind NOW)
      redis.call('ZADD', KEYS[1], math.max(num(r, 'lease_until_ms'), cutoff), id)
    else
      hset(rk, r, {'gen', num(r, 'gen') + 1, 'updated_ms', NOW_S})
      move(id, acct, get(r, 'seq'), st, st, {outbox = NOW_S, watch = NOW_S})
      local attempt = 0
      if st == 'sending' then attempt = num(r, 'attempts') end
      event(id, r.hi, st, '', RECOVERED_BY, attempt, 'recovered: no progress since ' .. iso_ms(since))
      out[#out + 1] = id
    end
  end
end
return out
