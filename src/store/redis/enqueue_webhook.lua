-- Appends an envelope to the tenant's event log (id <now ms>-<seq>, never
-- behind the last one), trims the log to the retention, and queues the job
-- for delivery unless told not to.
-- KEYS: wh:queue stream, events stream (one tenant's tag)
-- ARGV: job JSON, '1' to deliver, now ms, oldest ms to keep, payload
local ok = pcall(redis.call, 'XADD', KEYS[2], ARGV[3] .. '-*', 'p', ARGV[5])
if not ok then
  -- Our clock is behind the log's last entry (another instance's clock):
  -- append right after it.
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  local ms = last[1] and string.match(last[1][1], '^(%d+)-')
  redis.call('XADD', KEYS[2], ms and (ms .. '-*') or '*', 'p', ARGV[5])
end
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[4])
if ARGV[2] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('XGROUP', 'CREATE', KEYS[1], 'workers', '0', 'MKSTREAM')
  end
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[1])
end
return 1
