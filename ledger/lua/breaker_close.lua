-- breakerCloseScript closes an account's breaker (a probe found it healthy).
--
--  KEYS[1] breaker   KEYS[2] results stream
--  ARGV[1] status   ARGV[2] account   ARGV[3] now (RFC 3339)
--
-- Reply 1 closed (the caller announces), 0 was not open.

if redis.call('HGET', KEYS[1], 'open') ~= '1' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('XADD', KEYS[2], '*', R_EVENT, EV_ACCOUNT_BREAKER_CLOSED,
  R_ACCOUNT_ID, ARGV[2], R_STATUS, ARGV[1], R_AT, ARGV[3])
return 1
