-- Makes the tenant's pool the configured numbers; the free set becomes the
-- pool minus the numbers live sessions hold.
-- KEYS: pool, free, holders (one tenant's tag)
-- ARGV: the numbers
redis.call('DEL', KEYS[1], KEYS[2])
for i = 1, #ARGV do
  redis.call('SADD', KEYS[1], ARGV[i])
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then
    redis.call('SADD', KEYS[2], ARGV[i])
  end
end
return #ARGV
