-- A page of sessions, newest first, from one index (all, or one state).
-- Returns candidates after the cursor's score, ties included: the caller
-- drops those not after the cursor (byte order, as Redis orders ties).
-- KEYS: the index (one tenant's tag)
-- ARGV: ses key prefix, sescalls key prefix, '1' if a cursor, cursor ms,
--       limit
-- Returns {{ref, score, HGETALL ses, LRANGE sescalls}, ...}
local limit = tonumber(ARGV[5])
local entries
if ARGV[3] == '1' then
  local ties = redis.call('ZCOUNT', KEYS[1], ARGV[4], ARGV[4])
  entries = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[4], '-inf', 'WITHSCORES',
                       'LIMIT', 0, limit + 1 + ties)
else
  entries = redis.call('ZREVRANGE', KEYS[1], 0, limit, 'WITHSCORES')
end
local out = {}
for i = 1, #entries, 2 do
  local ref = entries[i]
  out[#out + 1] = {ref, entries[i + 1], redis.call('HGETALL', ARGV[1] .. ref),
                   redis.call('LRANGE', ARGV[2] .. ref, 0, -1)}
end
return out
