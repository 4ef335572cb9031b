-- expiredLeasesScript recovers the sending sends whose lease ended more than
-- a grace ago (see RecoverExpiredLeases), as recoverScript recovers them.
--
--  KEYS[1] leases  KEYS[2] outbox
--  ARGV[7] grace ms  ARGV[8] limit
--
-- Every entry it reads leaves the range it reads (removed, or scored at the
-- record's lease end, which is at or after now - grace), so a batch never
-- starves the entries behind it. It touches no send that is not sending.
--
-- Reply: the recovered send ids.

local cutoff = lease_now() - tonumber(ARGV[7])
local late = redis.call('ZRANGE', KEYS[1], '-inf', string.format('(%d', cutoff), 'BYSCORE',
  'LIMIT', 0, tonumber(ARGV[8]))
local out = {}
for _, id in ipairs(late) do
  local rk = k_send(id)
  local r = hmget(rk, {'hi', 'state', 'lease_until_ms', 'gen', 'attempts', 'account', 'seq'})
  local lease_until = num(r, 'lease_until_ms')
  if get(r, 'state') ~= 'sending' or lease_until == 0
    or redis.call('ZSCORE', KEYS[2], id) then
    -- not sending, no lease, or already re-scheduled: not this script's
    redis.call('ZREM', KEYS[1], id)
  elseif lease_until >= cutoff then
    -- the lease was renewed (a takeover): track its real end
    redis.call('ZADD', KEYS[1], lease_until, id)
  else
    hset(rk, r, {'gen', num(r, 'gen') + 1, 'updated_ms', NOW_S})
    move(id, get(r, 'account'), get(r, 'seq'), 'sending', 'sending', {outbox = NOW_S, watch = NOW_S})
    event(id, r.hi, 'sending', '', RECOVERED_BY, num(r, 'attempts'),
      'recovered: lease expired at ' .. iso_ms(lease_until))
    out[#out + 1] = id
  end
end
return out
