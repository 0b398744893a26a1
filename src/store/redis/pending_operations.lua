-- In-progress operations of a call, oldest first, optionally of one command;
-- drops index entries whose operation expired or has a result.
-- KEYS: opscall:<call> (one tenant's tag)
-- ARGV: op key prefix, command ('' for any)
-- Returns {HGETALL op, ...}
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. id
  local status = redis.call('HGET', key, 'status')
  if status ~= '"in_progress"' then
    redis.call('ZREM', KEYS[1], id)
  elseif ARGV[2] == '' or redis.call('HGET', key, 'command') == ARGV[2] then
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
return out
