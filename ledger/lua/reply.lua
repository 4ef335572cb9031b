-- replyScript ends, skipped/contact_replied, every send of the account
-- addressed to one of the contact ids that is pending_approval, approved or
-- waiting and whose stop_if_replied_since is before the reply, and appends
-- the contact_replied event entry for the reply itself.
--
--  KEYS[1] results stream
--  ARGV[7] dedupe key  ARGV[8] TTL ms  ARGV[9] account  ARGV[10] reply ms  ARGV[11] reply (RFC 3339)
--  ARGV[12] chat id  ARGV[13] message id  ARGV[14] sender id  ARGV[15..] contact ids
--
-- Reply: {"duplicate"} | {"ok", skipped send ids...}.

if seen() then return {'duplicate'} end
local acct = ARGV[9]
local skipped = {}
for i = 15, #ARGV do
  local ck = k_contact(ARGV[i])
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', ck, 0, '(' .. ARGV[10])) do
    local rk = k_send(id)
    local r = hmget(rk, FINISH_FIELDS)
    local st = get(r, 'state')
    if st == '' or is_terminal(st) then
      redis.call('ZREM', ck, id)
    elseif get(r, 'account') == acct and (st == 'pending_approval' or st == 'approved' or st == 'waiting') then
      finish(id, r, 'skipped', 'contact_replied', 'the contact wrote at ' .. ARGV[11] .. ' (provider event)', {}, 'provider')
      audit('skipped', {'send_id', id, 'by', 'provider', 'account_id', acct, 'note', 'contact_replied'})
      redis.call('ZREM', ck, id)
      skipped[#skipped + 1] = id
    end
  end
end
redis.call('XADD', RESULTS, 'MAXLEN', '~', RESULTS_MAXLEN, '*', R_EVENT, EV_CONTACT_REPLIED, R_ACCOUNT_ID, acct,
  R_CHAT_ID, ARGV[12], R_MESSAGE_ID, ARGV[13], R_CONTACT_ID, ARGV[14], R_AT, ARGV[11],
  R_SEND_IDS, table.concat(skipped, ','))
local out = {'ok'}
for _, id in ipairs(skipped) do out[#out + 1] = id end
return out
