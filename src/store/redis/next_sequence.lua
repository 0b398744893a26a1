-- The next webhook sequence number of a call, kept in the call's hash (so it
-- expires with the record); a counter of a call never written expires after
-- ARGV[1] ms.
-- KEYS: call hash
local n = redis.call('HINCRBY', KEYS[1], '_seq', 1)
if redis.call('HEXISTS', KEYS[1], 'uuid') == 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
