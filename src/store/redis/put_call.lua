-- Merges a write into a call record (mirrors crate::store::merge): the state
-- never moves back, identity/parties/timestamps/ending details once set are kept,
-- other given fields replace, absent ones erase nothing; the binding fills
-- what is still unknown; an ended call expires after the retention.
-- KEYS: call hash, binding hash (one {call:<uuid>} tag)
-- ARGV: retention ms, the record's creation ms, the live lists' key names
--       around the tenant (head, tail) and around the node (head, tail),
--       or four empty strings, then field, JSON value pairs of the non-null
--       fields
-- Returns HGETALL of the merged record.
-- With the list names (one server, where a script may write other tags'
-- keys) the merged call is put on, or taken off, its tenant's and node's
-- live lists in the same step, scored by its first creation time.
local key = KEYS[1]
local sticky = {uuid = true, tenant = true, direction = true, created_at = true,
                caller = true, callee = true, caller_display_name = true,
                answered_at = true, ended_at = true, hangup_cause = true,
                q850 = true, sip_code = true, duration_s = true, billsec = true}
local rank = {['"ringing"'] = 0, ['"early"'] = 1, ['"answered"'] = 2, ['"ended"'] = 3}
local stored_state = redis.call('HGET', key, 'state')
local stored_rank = stored_state and rank[stored_state] or -1
for i = 7, #ARGV, 2 do
  local f, v = ARGV[i], ARGV[i + 1]
  if f == 'state' then
    if (rank[v] or -1) > stored_rank then
      redis.call('HSET', key, f, v)
    end
  elseif f == 'reconciled' then
    if stored_state ~= '"ended"' then
      redis.call('HSET', key, f, v)
    end
  elseif f == 'node' then
    local n = redis.call('HGET', key, 'node')
    if not n or n == '""' then
      redis.call('HSET', key, f, v)
    end
  elseif sticky[f] then
    redis.call('HSETNX', key, f, v)
  else
    redis.call('HSET', key, f, v)
  end
end
for _, f in ipairs({'tenant', 'session_ref', 'user_data'}) do
  local b = redis.call('HGET', KEYS[2], f)
  if b then
    redis.call('HSETNX', key, f, b)
  end
end
redis.call('HSETNX', key, '_created_ms', ARGV[2])
local live = redis.call('HGET', key, 'state') ~= '"ended"'
if live then
  redis.call('PERSIST', key)
else
  redis.call('PEXPIRE', key, ARGV[1])
end
if ARGV[3] ~= '' then
  local lists = {}
  local node = cjson.decode(redis.call('HGET', key, 'node') or '""')
  table.insert(lists, ARGV[5] .. node .. ARGV[6])
  local tenant = redis.call('HGET', key, 'tenant')
  if tenant then
    table.insert(lists, ARGV[3] .. cjson.decode(tenant) .. ARGV[4])
  end
  local score = redis.call('HGET', key, '_created_ms')
  local uuid = cjson.decode(redis.call('HGET', key, 'uuid'))
  for _, list in ipairs(lists) do
    if live then
      redis.call('ZADD', list, score, uuid)
    else
      redis.call('ZREM', list, uuid)
    end
  end
end
return redis.call('HGETALL', key)
