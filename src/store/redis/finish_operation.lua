-- Sets the one result of an in-progress operation and drops it from the
-- indexes.
-- KEYS: op:<id>, ops:deadline, wh:queue, events (one tenant's tag)
-- ARGV: id, status JSON, detail JSON (null when none), completed-at JSON,
--       opscall key prefix, then the emission (emit_if) queued with the result
-- Returns {'none'} | {'changed' | 'same', HGETALL op}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'none'}
end
if redis.call('HGET', KEYS[1], 'status') ~= '"in_progress"' then
  return {'same', redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'detail', ARGV[3], 'completed_at', ARGV[4])
local call_id = redis.call('HGET', KEYS[1], 'call_id')
redis.call('ZREM', ARGV[5] .. call_id, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
emit_if(3, 6)
return {'changed', redis.call('HGETALL', KEYS[1])}
