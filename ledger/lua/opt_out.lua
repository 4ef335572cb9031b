-- optOutScript adds or removes a contact on the opt-out list, under every known id of the
-- person: the id given and, for a WhatsApp id, its linked id of the other form (idlink). An
-- opt-out of a WhatsApp id whose other form is unknown is also kept in the unlinked set of its
-- form, until a link names the other form.
--
--  KEYS[1] optout
--  ARGV[7] contact id (normalized)  ARGV[8] by  ARGV[9] "1" add, "0" remove
--  ARGV[10] the contact's form: "phone", "lid" or "" (not a WhatsApp user id)
--
-- Reply: 1 if the list changed.

local contact, by, form = ARGV[7], ARGV[8], ARGV[10]
local changed, linked, name
if ARGV[9] == '1' then
  changed, linked = optout_put(KEYS[1], contact, form)
  name = 'optout_added'
else
  changed, linked = optout_del(KEYS[1], contact, form)
  name = 'optout_removed'
end
if changed == 1 then
  local fields = {'contact_id', contact, 'by', by}
  if linked then fields[#fields + 1] = 'linked_id'; fields[#fields + 1] = linked end
  audit(name, fields)
end
return changed
