-- Replaces a call's binding and sets its time to live.
-- KEYS: binding hash
-- ARGV: ttl ms, then field, JSON value pairs
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
