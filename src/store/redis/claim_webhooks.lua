-- Claims due jobs for one worker: retries whose time has come go back into
-- the stream; jobs whose lease ran out (their worker died) are taken over
-- with XCLAIM; then new entries are read with XREADGROUP. Every claim gets
-- a lease stamped with the caller's `now`.
-- KEYS: wh:queue stream, wh:leases zset, wh:retry zset (one tenant's tag)
-- ARGV: consumer, max, now ms, stale ms (claims at or before it expired)
-- Returns {{entry id, job JSON}, ...}
local q, leases, retry = KEYS[1], KEYS[2], KEYS[3]
local consumer, max, now = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if redis.call('EXISTS', q) == 0 then
  if redis.call('ZCARD', retry) == 0 then
    return {}
  end
  redis.call('XGROUP', 'CREATE', q, 'workers', '0', 'MKSTREAM')
end
for _, job in ipairs(redis.call('ZRANGEBYSCORE', retry, '-inf', now, 'LIMIT', 0, max)) do
  redis.call('XADD', q, '*', 'job', job)
  redis.call('ZREM', retry, job)
end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', ARGV[4], 'LIMIT', 0, max)) do
  local got = redis.call('XCLAIM', q, 'workers', consumer, 0, id)
  local e = got[1]
  if type(e) == 'table' and type(e[2]) == 'table' then
    redis.call('ZADD', leases, now, id)
    out[#out + 1] = {e[1], e[2][2]}
  else
    redis.call('ZREM', leases, id)
  end
end
if #out < max then
  local r = redis.call('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', max - #out,
                       'STREAMS', q, '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      redis.call('ZADD', leases, now, e[1])
      out[#out + 1] = {e[1], e[2][2]}
    end
  end
end
return out
