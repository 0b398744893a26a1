-- Completes a live session and returns its number to the pool.
-- KEYS: ses, sescalls, sessions, sessions:open, sessions:active,
--       sessions:completed, expiry, holders, free, pool, wh:queue, events
--       (one tenant's tag)
-- ARGV: ref, reason JSON, completed-at JSON, then the emission (emit_if)
--       queued with the change, and last the completed-at ms rounded up
--       (ARGV[#ARGV]: when the number is released)
-- Returns {'none'} | {'changed' | 'same', HGETALL ses, LRANGE sescalls}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'none'}
end
local ref = ARGV[1]
if redis.call('HGET', KEYS[1], 'state') == 'completed' then
  return {'same', redis.call('HGETALL', KEYS[1]), {}}
end
redis.call('HSET', KEYS[1], 'state', 'completed', 'reason', ARGV[2],
           'completed_at', ARGV[3])
redis.call('DEL', KEYS[2])
local score = redis.call('ZSCORE', KEYS[3], ref)
redis.call('ZREM', KEYS[4], ref)
redis.call('ZREM', KEYS[5], ref)
redis.call('ZADD', KEYS[6], score, ref)
redis.call('ZREM', KEYS[7], ref)
local number = redis.call('HGET', KEYS[1], 'number')
if redis.call('HGET', KEYS[8], number) == ref then
  redis.call('HDEL', KEYS[8], number)
  if redis.call('SISMEMBER', KEYS[10], number) == 1 then
    redis.call('SADD', KEYS[9], number)
    -- When it was released (ms, rounded up; the last ARGV): a session
    -- created on it later starts no earlier (create_session.lua).
    redis.call('HSET', KEYS[9] .. ':at', number, ARGV[#ARGV])
  end
end
emit_if(11, 4)
return {'changed', redis.call('HGETALL', KEYS[1]), {}}
