-- markReleasedScript removes outbox entries whose release generation is
-- still their record's, and starts the watchdog's clock at the release. An
-- entry already gone (the task began, was held or finished first) leaves the
-- watch score to the script that removed it.
--
--  KEYS[1] outbox  KEYS[2..] the records
--  ARGV[7..] send_id, gen pairs (one per record, in KEYS order)
--
-- Reply: the number of entries removed.

local removed = 0
for i = 2, #KEYS do
  local id, gen = ARGV[5 + 2 * i - 2], ARGV[5 + 2 * i - 1]
  local r = hmget(KEYS[i], {'gen', 'state'})
  if tonumber(get(r, 'gen')) == tonumber(gen) and redis.call('ZREM', KEYS[1], id) == 1 then
    removed = removed + 1
    local st = get(r, 'state')
    if st == 'approved' or st == 'waiting' or st == 'sending' then
      redis.call('ZADD', k_watch(), NOW_S, id)
    end
  end
end
return removed
