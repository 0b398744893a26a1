-- The session holding a number, read in one round trip.
-- KEYS: holders (one tenant's tag)
-- ARGV: number, ses key prefix, sescalls key prefix (same tag)
-- Returns {} when no session holds it, else {HGETALL ses, LRANGE sescalls}
local ref = redis.call('HGET', KEYS[1], ARGV[1])
if not ref then
  return {}
end
return {redis.call('HGETALL', ARGV[2] .. ref), redis.call('LRANGE', ARGV[3] .. ref, 0, -1)}
