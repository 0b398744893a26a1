-- Records the outcome of a claimed job: acknowledged and removed from the
-- stream; a retry waits in the retry zset until due, a dead one goes to the
-- dead letters (newest first, capped); the attempt counter goes up by one.
-- A receipt no longer pending (settled already) changes nothing.
-- KEYS: wh:queue stream, wh:leases, wh:retry, wh:dead (one tenant's tag)
-- ARGV: receipt, 'delivered' | 'retry' | 'dead', due ms, dead letters kept
-- Returns 1 if settled, 0 if nothing was pending under the receipt.
local q, receipt = KEYS[1], ARGV[1]
if redis.call('EXISTS', q) == 0 then
  return 0
end
if #redis.call('XPENDING', q, 'workers', receipt, receipt, 1) == 0 then
  return 0
end
local entry = redis.call('XRANGE', q, receipt, receipt)
local text = entry[1] and entry[1][2][2]
if text then
  local ok, job = pcall(cjson.decode, text)
  if ok and type(job) == 'table' then
    job.attempt = (tonumber(job.attempt) or 0) + 1
    text = cjson.encode(job)
  end
end
redis.call('XACK', q, 'workers', receipt)
redis.call('XDEL', q, receipt)
redis.call('ZREM', KEYS[2], receipt)
if ARGV[2] == 'delivered' or not text then
  return 1
end
if ARGV[2] == 'retry' then
  redis.call('ZADD', KEYS[3], ARGV[3], text)
else
  redis.call('LPUSH', KEYS[4], text)
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[4]) - 1)
end
return 1
