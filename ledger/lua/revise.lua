-- reviseScript replaces the request of a pending send.
--
--  KEYS[1] record
--  ARGV[7] send_id  ARGV[8] digest shown  ARGV[9] new digest  ARGV[10] new request JSON  ARGV[11] editor
--
-- Reply: {code}; code ok | not_found | not_pending | expired | digest_mismatch.

local id, shown, digest, body, by = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local rk = KEYS[1]
local r = hmget(rk, {'hi', 'state', 'deadline_ms', 'digest', 'account', 'revision', 'orig_digest', 'req.n'})
if missing(rk, r) then return {'not_found'} end
if get(r, 'state') ~= 'pending_approval' then return {'not_pending'} end
if num(r, 'deadline_ms') <= NOW then return {'not_pending'} end
if get(r, 'digest') ~= shown then return {'digest_mismatch'} end
local rev = num(r, 'revision') + 1
local orig = get(r, 'orig_digest')
if orig == '' then orig = shown end
local kv, del = {'HSET', rk, 'digest', digest, 'orig_digest', orig, 'revision', str(rev),
  'revised_by', by, 'updated_ms', NOW_S}, {}
put_long(kv, del, 'req', body, get(r, 'req.n'))
redis.call(unpack(kv))
if #del > 0 then redis.call('HDEL', rk, unpack(del)) end
event(id, r.hi, 'pending_approval', 'revised', by, 0, 'revision ' .. str(rev))
audit('revised', {'send_id', id, 'by', by, 'account_id', get(r, 'account'), 'digest', digest,
  'previous_digest', shown, 'revision', str(rev)})
return {'ok'}
