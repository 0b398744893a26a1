-- emit(queue, events, job, deliver, now_ms, keep_from, payload): appends an
-- envelope to the tenant's event log (id <now ms>-<seq>, never behind the
-- last one), trims the log to the retention, and queues the job for delivery
-- unless told not to. Prepended to every script that queues a webhook, so
-- that a state change and the webhook it causes are one atomic step.
local function emit(queue, events, job, deliver, now_ms, keep_from, payload)
  local ok = pcall(redis.call, 'XADD', events, now_ms .. '-*', 'p', payload)
  if not ok then
    -- Our clock is behind the log's last entry (another instance's clock):
    -- append right after it.
    local last = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)
    local ms = last[1] and string.match(last[1][1], '^(%d+)-')
    redis.call('XADD', events, ms and (ms .. '-*') or '*', 'p', payload)
  end
  redis.call('XTRIM', events, 'MINID', keep_from)
  if deliver == '1' then
    if redis.call('EXISTS', queue) == 0 then
      redis.call('XGROUP', 'CREATE', queue, 'workers', '0', 'MKSTREAM')
    end
    redis.call('XADD', queue, '*', 'job', job)
  end
end

-- emit_if(k, a): the emission whose keys start at KEYS[k] (queue, events)
-- and whose arguments start at ARGV[a] ('1' when there is one, job,
-- deliver, now ms, oldest ms to keep, payload).
local function emit_if(k, a)
  if ARGV[a] == '1' then
    emit(KEYS[k], KEYS[k + 1], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
  end
end
