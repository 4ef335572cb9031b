-- receiptScript writes a delivery status reported by the provider (delivered,
-- read, reaction, edited, deleted) on the send whose message it concerns:
-- record fields, a history event (state unchanged) and an event entry
-- (ARGV[14], named by package results for the kind) in the results stream.
--
--  KEYS[1] results stream
--  ARGV[7] dedupe key  ARGV[8] TTL ms  ARGV[9] message id  ARGV[10] kind  ARGV[11] value (a reaction)
--  ARGV[12] at (RFC 3339)  ARGV[13] at ms  ARGV[14] results event type
--
-- Reply: {"duplicate"} | {"no_match"} | {"ok", send id}.

if seen() then return {'duplicate'} end
local id = redis.call('GET', k_msg(ARGV[9]))
if not id then return {'no_match'} end
local rk = k_send(id)
local r = hmget(rk, {'hi', 'state', 'account', 'chat_id', 'attempts'})
if missing(rk, r) then return {'no_match'} end
local kind, value = ARGV[10], ARGV[11]
local kv = {kind .. '_ms', ARGV[13], 'updated_ms', NOW_S}
if kind == 'reaction' then kv[#kv + 1] = 'reaction'; kv[#kv + 1] = value end
hset(rk, r, kv)
local detail = 'provider: message ' .. kind .. ' at ' .. ARGV[12]
if value ~= '' then detail = detail .. ' (' .. value .. ')' end
event(id, r.hi, get(r, 'state'), '', 'provider', 0, detail)
redis.call('XADD', RESULTS, 'MAXLEN', '~', RESULTS_MAXLEN, '*', R_EVENT, ARGV[14],
  R_ACCOUNT_ID, get(r, 'account'), R_SEND_ID, id, R_CHAT_ID, get(r, 'chat_id'), R_MESSAGE_ID, ARGV[9],
  R_STATUS, value, R_AT, ARGV[12])
return {'ok', id}
