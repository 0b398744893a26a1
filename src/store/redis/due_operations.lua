-- In-progress operations whose deadline has passed, earliest first; drops
-- index entries whose operation expired or has a result.
-- KEYS: ops:deadline (one tenant's tag)
-- ARGV: op key prefix, now ms, limit
-- Returns {HGETALL op, ...}
local limit = tonumber(ARGV[3])
local out = {}
while #out < limit do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', #out, limit - #out)
  if #ids == 0 then
    break
  end
  local stale = false
  for _, id in ipairs(ids) do
    local key = ARGV[1] .. id
    if redis.call('HGET', key, 'status') == '"in_progress"' then
      out[#out + 1] = redis.call('HGETALL', key)
    else
      redis.call('ZREM', KEYS[1], id)
      stale = true
    end
  end
  if not stale then
    break
  end
end
return out
