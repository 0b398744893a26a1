-- Creates a session with a number popped from the tenant's free set.
-- KEYS: ses, sescalls, sessions, sessions:open, sessions:active,
--       sessions:completed, expiry, holders, free, pool (one tenant's tag)
-- ARGV: ref, base JSON, created ms, expires ms
-- Returns {'dup'} | {'exhausted'} | {'ok', number, created ms, expires ms}
-- The times were read before this step: a number released later than
-- `created` (free:at, written by complete_session.lua, in ms rounded up)
-- moves created and expires forward by the difference, kept in the hash as
-- created_ms / expires_ms, so that sessions on one number never overlap.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'dup'}
end
local number = redis.call('SPOP', KEYS[9])
if not number then
  return {'exhausted'}
end
local created, expires = tonumber(ARGV[3]), tonumber(ARGV[4])
local released = tonumber(redis.call('HGET', KEYS[9] .. ':at', number) or '')
redis.call('HSET', KEYS[1], 'base', ARGV[2], 'number', number, 'state', 'open')
if released and released > created then
  expires = expires + (released - created)
  created = released
end
created, expires = string.format('%.0f', created), string.format('%.0f', expires)
if created ~= ARGV[3] then
  redis.call('HSET', KEYS[1], 'created_ms', created, 'expires_ms', expires)
end
redis.call('ZADD', KEYS[3], created, ARGV[1])
redis.call('ZADD', KEYS[4], created, ARGV[1])
redis.call('ZADD', KEYS[7], expires, ARGV[1])
redis.call('HSET', KEYS[8], number, ARGV[1])
return {'ok', number, created, expires}
