-- trimScript removes the index entries of records finished before a cutoff
-- (and the records, should they still exist).
--
--  KEYS[1] finished
--  ARGV[7] cutoff ms  ARGV[8] batch
--
-- Reply: number of finished entries handled.

local members = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[7], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[8]))
for _, m in ipairs(members) do
  local a = string.find(m, '\n', 1, true)
  local b = a and string.find(m, '\n', a + 1, true)
  local c = b and string.find(m, '\n', b + 1, true)
  if c then
    local state, seq = string.sub(m, 1, a - 1), string.sub(m, a + 1, b - 1)
    local id, acct = string.sub(m, b + 1, c - 1), string.sub(m, c + 1)
    zrem_if(k_state(state), id, seq)
    zrem_if(k_acct(acct, state), id, seq)
    -- the every-state indexes that records created before List merged the state
    -- indexes were also put in; nothing adds to them any more
    redis.call('ZREM', k_all(), id)
    redis.call('ZREM', k_acct_all(acct), id)
    if redis.call('HGET', k_send(id), 'seq') == seq then
      redis.call('DEL', k_send(id), k_history(id))
    end
  end
  redis.call('ZREM', KEYS[1], m)
end
return #members
