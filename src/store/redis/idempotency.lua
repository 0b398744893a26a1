-- Idempotency-Key records: one hash per (tenant, endpoint, key), fields
-- fp, owner, state ('in_progress' | 'done') and, once done, response (JSON).
-- KEYS: idem:<endpoint>:<key> (one tenant's tag)
-- ARGV: 'begin', fingerprint, owner, lease ms
--     | 'finish', owner, response JSON, ttl ms
--     | 'release', owner
-- Returns: begin {'started'} | {'existing', HGETALL}; finish, release 1 | 0
local step = ARGV[1]
if step == 'begin' then
  local existing = redis.call('HGETALL', KEYS[1])
  if #existing > 0 then
    return {'existing', existing}
  end
  redis.call('HSET', KEYS[1], 'fp', ARGV[2], 'owner', ARGV[3], 'state', 'in_progress')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'started'}
end
-- finish and release act only on the caller's own in-progress record.
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2]
   or redis.call('HGET', KEYS[1], 'state') ~= 'in_progress' then
  return 0
end
if step == 'finish' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'response', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
if step == 'release' then
  redis.call('DEL', KEYS[1])
  return 1
end
return redis.error_reply('unknown idempotency step ' .. tostring(step))
