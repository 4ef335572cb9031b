-- optOutPutScript puts a contact on the opt-out list with its details and
-- ends, skipped/opted_out, every send addressed to it (or to the other
-- contact ids given, e.g. the chat where it wrote) that is pending_approval,
-- approved or waiting, whatever its account; then announces it (event entry
-- contact_opted_out) when anything changed.
--
--  KEYS[1] results stream
--  ARGV[7] dedupe key  ARGV[8] TTL ms  ARGV[9] contact  ARGV[10] info JSON  ARGV[11] by  ARGV[12] reason
--  ARGV[13] source  ARGV[14] keyword  ARGV[15] account ("" none)  ARGV[16] chat id
--  ARGV[17] the contact's id form ("phone", "lid" or "")  ARGV[18..] more contact ids
--
-- Reply: {"duplicate"} | {"ok", "1" added / "0" already there, skipped send ids...}.

if seen() then return {'duplicate'} end
local contact, by = ARGV[9], ARGV[11]
local added, linked = optout_put(k_optout(), contact, ARGV[17])
if added == 1 then
  redis.call('HSET', k_optout_info(), contact, ARGV[10])
  local fields = {'contact_id', contact, 'by', by, 'reason', ARGV[12], 'source', ARGV[13], 'keyword', ARGV[14]}
  if linked then fields[#fields + 1] = 'linked_id'; fields[#fields + 1] = linked end
  audit('optout_added', fields)
end
local skipped = {}
local contacts = {contact}
if linked then contacts[#contacts + 1] = linked end
for i = 18, #ARGV do contacts[#contacts + 1] = ARGV[i] end
for _, c in ipairs(contacts) do
  local ck = k_contact(c)
  for _, id in ipairs(redis.call('ZRANGE', ck, 0, -1)) do
    local rk = k_send(id)
    local r = hmget(rk, FINISH_FIELDS)
    local st = get(r, 'state')
    if st == '' or is_terminal(st) then
      redis.call('ZREM', ck, id)
    elseif st == 'pending_approval' or st == 'approved' or st == 'waiting' then
      finish(id, r, 'skipped', 'opted_out', 'the contact opted out (' .. ARGV[13] .. ')', {}, by)
      audit('skipped', {'send_id', id, 'by', by, 'account_id', get(r, 'account'), 'note', 'opted_out'})
      redis.call('ZREM', ck, id)
      skipped[#skipped + 1] = id
    end
  end
end
if added == 1 or #skipped > 0 then
  redis.call('XADD', RESULTS, 'MAXLEN', '~', RESULTS_MAXLEN, '*', R_EVENT, EV_CONTACT_OPTED_OUT,
    R_ACCOUNT_ID, ARGV[15], R_CHAT_ID, ARGV[16], R_CONTACT_ID, contact, R_STATUS, ARGV[14], R_AT, NOW_ISO,
    R_DETAIL, ARGV[13], R_SEND_IDS, table.concat(skipped, ','))
end
local out = {'ok', tostring(added)}
for _, id in ipairs(skipped) do out[#out + 1] = id end
return out
