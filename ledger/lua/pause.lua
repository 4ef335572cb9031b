-- pauseScript turns a kill switch on.
--
--  KEYS[1] paused:global (global) or paused:accounts (account)
--  ARGV[7] account ("" = global)  ARGV[8] by
--
-- Reply: 1 if it was off.

local acct, by = ARGV[7], ARGV[8]
local changed = 0
if acct == '' then
  if redis.call('SET', KEYS[1], by, 'NX') then changed = 1 end
else
  changed = redis.call('SADD', KEYS[1], acct)
end
if changed == 1 then
  local scope = 'global'
  if acct ~= '' then scope = 'account' end
  audit('paused', {'scope', scope, 'account_id', acct, 'by', by})
end
return changed
