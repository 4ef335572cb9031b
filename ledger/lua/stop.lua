-- stopScript rejects or cancels a send that has not started sending. A
-- sending send is not stopped but gets a stop request (stop_state, stop_by,
-- stop_note, stop_ms; the first request is kept, a later one changes
-- nothing), a history event and an audit entry "<event>_requested": every
-- script that then moves the send out of sending without a delivery
-- (Defer, ResolveReconciled) or begins it again ends it as requested
-- (finish_stopped); End(sent) wins, the message went out.
--
--  KEYS[1] results stream  KEYS[2] record
--  ARGV[7] send_id  ARGV[8] by  ARGV[9] note  ARGV[10] final state  ARGV[11] reason  ARGV[12] audit event
--
-- Reply: {code}; code ok | not_found | final | stop_pending.

local id, by, note = ARGV[7], ARGV[8], ARGV[9]
local rk = KEYS[2]
local r = hmget(rk, FINISH_FIELDS)
if missing(rk, r) then return {'not_found'} end
local st = get(r, 'state')
if is_terminal(st) then return {'final'} end
if st == 'sending' then
  if get(hmget(rk, {'stop_state'}), 'stop_state') == '' then
    redis.call('HSET', rk, 'stop_state', ARGV[10], 'stop_by', by, 'stop_note', note, 'stop_ms', NOW_S,
      'updated_ms', NOW_S)
    event(id, r.hi, 'sending', ARGV[11], by, num(r, 'attempts'),
      ARGV[12] .. ' requested while sending: takes effect unless the message went out')
    audit(ARGV[12] .. '_requested', {'send_id', id, 'by', by, 'digest', get(r, 'digest'),
      'account_id', get(r, 'account'), 'note', note})
  end
  return {'stop_pending'}
end
finish(id, r, ARGV[10], ARGV[11], '', {'decided_by', by, 'decided_ms', NOW_S, 'decision_note', note}, by)
audit(ARGV[12], {'send_id', id, 'by', by, 'digest', get(r, 'digest'),
  'account_id', get(r, 'account'), 'note', note})
return {'ok'}
