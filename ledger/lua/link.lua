-- linkScript records that a phone-form id and an @lid id are one person, both ways, and
-- carries an opt-out of either to the other: from then on an opt-out added with one form is
-- found under both, and neither is unlinked any more.
--
--  KEYS[1] optout
--  ARGV[7] phone-form id  ARGV[8] @lid id (both normalized)
--
-- Reply: 1 if the link is new, 0 if it was known.

local phone, lid = ARGV[7], ARGV[8]
if redis.call('HGET', k_idlink(), phone) == lid and redis.call('HGET', k_idlink(), lid) == phone then
  return 0
end
redis.call('HSET', k_idlink(), phone, lid, lid, phone)
redis.call('SREM', k_optout_unlinked('phone'), phone)
redis.call('SREM', k_optout_unlinked('lid'), lid)
mark_unlinked(KEYS[1])
local p = redis.call('SISMEMBER', KEYS[1], phone)
local l = redis.call('SISMEMBER', KEYS[1], lid)
if p ~= l then
  redis.call('SADD', KEYS[1], phone, lid)
  local from, to = phone, lid
  if l == 1 then from, to = lid, phone end
  audit('optout_linked', {'contact_id', from, 'linked_id', to})
end
return 1
