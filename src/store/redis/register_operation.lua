-- Registers an operation under its idempotency key: the first one wins.
-- KEYS: opkey:<uid>, op:<id>, opscall:<call>, ops:deadline (one tenant's tag)
-- ARGV: id, record JSON, ttl ms, '1' if in progress, created ms,
--       deadline ms, op key prefix, call id, command, status JSON
-- Returns {'created'} | {'existing', HGETALL of the winner}
local existing = redis.call('GET', KEYS[1])
if existing then
  local rec = redis.call('HGETALL', ARGV[7] .. existing)
  if #rec > 0 then
    return {'existing', rec}
  end
end
local ttl = ARGV[3]
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'rec', ARGV[2], 'call_id', ARGV[8], 'command', ARGV[9],
           'status', ARGV[10])
redis.call('PEXPIRE', KEYS[2], ttl)
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  if redis.call('PTTL', KEYS[3]) < tonumber(ttl) then
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
end
return {'created'}
