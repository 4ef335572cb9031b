-- linkScript records that a phone-form id and an @lid id are one person (link_identity):
-- both ways, and an opt-out of either carried to the other.
--
--  KEYS[1] optout
--  ARGV[7] phone-form id  ARGV[8] @lid id (both normalized)
--
-- Reply: 1 if the link is new, 0 if it was known.

return link_identity(KEYS[1], ARGV[7], ARGV[8])
