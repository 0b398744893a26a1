-- Makes the tenant's pool the configured numbers; the free set becomes the
-- pool minus the numbers live sessions hold. Does nothing when the pool is
-- already synced to these numbers (the fingerprint is there: a store that
-- lost its contents lost it too).
-- KEYS: pool, free, holders, pool:fp (one tenant's tag)
-- ARGV: fingerprint of the numbers, then the numbers
-- Returns 1 when it changed the pool, 0 when it was in sync.
if redis.call('GET', KEYS[4]) == ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
for i = 2, #ARGV do
  redis.call('SADD', KEYS[1], ARGV[i])
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then
    redis.call('SADD', KEYS[2], ARGV[i])
  end
end
redis.call('SET', KEYS[4], ARGV[1])
return 1
