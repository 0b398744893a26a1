-- A call started or ended on a session's masked number.
-- KEYS: ses, sescalls, sessions, sessions:open, sessions:active,
--       sessions:completed, expiry, holders, free, pool, wh:queue, events
--       (one tenant's tag)
--       [, the call's binding hash: 'start' on one server, where one script
--       may write another tag's key]
-- ARGV: ref, 'start' | 'end', call uuid, then the emission (emit_if) queued
--       with the change, then (with the binding key) the binding's ttl ms
--       and its field, JSON value pairs
-- Returns {'none'} | {'changed' | 'same', HGETALL ses, LRANGE sescalls}
-- The binding is written only when the call starts on a live session, so
-- that no call is bound to a session that is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'none'}
end
local state = redis.call('HGET', KEYS[1], 'state')
if KEYS[13] and state ~= 'completed' then
  local b = (ARGV[4] == '1') and 10 or 5
  redis.call('DEL', KEYS[13])
  for i = b + 1, #ARGV, 2 do
    redis.call('HSET', KEYS[13], ARGV[i], ARGV[i + 1])
  end
  redis.call('PEXPIRE', KEYS[13], ARGV[b])
end
local changed = false
if state ~= 'completed' then
  local ref, uuid = ARGV[1], ARGV[3]
  local score = redis.call('ZSCORE', KEYS[3], ref)
  if ARGV[2] == 'start' then
    if not redis.call('LPOS', KEYS[2], uuid) then
      redis.call('RPUSH', KEYS[2], uuid)
    end
    if state == 'open' then
      redis.call('HSET', KEYS[1], 'state', 'active')
      redis.call('ZREM', KEYS[4], ref)
      redis.call('ZADD', KEYS[5], score, ref)
      changed = true
    end
  else
    redis.call('LREM', KEYS[2], 0, uuid)
    if state == 'active' and redis.call('LLEN', KEYS[2]) == 0 then
      redis.call('HSET', KEYS[1], 'state', 'open')
      redis.call('ZREM', KEYS[5], ref)
      redis.call('ZADD', KEYS[4], score, ref)
      changed = true
    end
  end
end
if changed then
  emit_if(11, 4)
end
return {changed and 'changed' or 'same', redis.call('HGETALL', KEYS[1]),
        redis.call('LRANGE', KEYS[2], 0, -1)}
