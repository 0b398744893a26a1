-- Creates a session with a number popped from the tenant's free set.
-- KEYS: ses, sescalls, sessions, sessions:open, sessions:active,
--       sessions:completed, expiry, holders, free, pool (one tenant's tag)
-- ARGV: ref, base JSON, created ms, expires ms
-- Returns {'dup'} | {'exhausted'} | {'ok', number}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'dup'}
end
local number = redis.call('SPOP', KEYS[9])
if not number then
  return {'exhausted'}
end
redis.call('HSET', KEYS[1], 'base', ARGV[2], 'number', number, 'state', 'open')
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[8], number, ARGV[1])
return {'ok', number}
