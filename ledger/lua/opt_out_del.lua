-- optOutDelScript takes a contact off the opt-out list with its details.
--
--  KEYS[1] opt-out set
--  ARGV[7] contact  ARGV[8] by  ARGV[9] reason  ARGV[10] the contact's id form ("phone", "lid" or "")
--
-- Reply: 1 if the list changed.

local contact, by = ARGV[7], ARGV[8]
local removed, linked = optout_del(KEYS[1], contact, ARGV[10])
redis.call('HDEL', k_optout_info(), contact)
if linked then redis.call('HDEL', k_optout_info(), linked) end
if removed == 1 then
  local fields = {'contact_id', contact, 'by', by, 'reason', ARGV[9]}
  if linked then fields[#fields + 1] = 'linked_id'; fields[#fields + 1] = linked end
  audit('optout_removed', fields)
end
return removed
