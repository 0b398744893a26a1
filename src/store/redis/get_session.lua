-- One session, read consistently.
-- KEYS: ses, sescalls (one tenant's tag)
-- Returns {HGETALL ses, LRANGE sescalls}
return {redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1)}
