-- inspect: KEYS lock, record. {token, pttl, record}, record false when
-- there is none; {} when the lock is free.
local v = redis.call('GET', KEYS[1])
if not v then
  return {}
end
local r = redis.pcall('GET', KEYS[2])
return {v, redis.call('PTTL', KEYS[1]), type(r) == 'string' and r}
