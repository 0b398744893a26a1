-- Queues one envelope (see emit), at most once per envelope id.
-- KEYS: wh:queue stream, events stream, wh:seen:<id> (one tenant's tag)
-- ARGV: '1', job JSON, '1' to deliver, now ms, oldest ms to keep, payload,
--       how long the id is remembered (ms)
-- Returns 1 when queued, 0 when that id was queued before.
if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[7]) then
  return 0
end
emit_if(1, 1)
return 1
