-- isoScript formats ARGV[7..] (ms) with iso_ms, for TestISOMatchesLua.
--
--  KEYS[1] any key of the ledger (routing only)
--  ARGV[7..] times (Unix ms)
--
-- Reply: {RFC 3339 string...}, one per ARGV[7..].

local out = {}
for i = 7, #ARGV do out[#out + 1] = iso_ms(tonumber(ARGV[i])) end
return out
