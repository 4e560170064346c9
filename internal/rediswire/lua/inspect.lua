-- inspect: KEYS lock, meta. {token, pttl, meta}, meta false when there is
-- none; {} when the lock is free.
local v = redis.call('GET', KEYS[1])
if not v then
  return {}
end
local m = redis.pcall('GET', KEYS[2])
return {v, redis.call('PTTL', KEYS[1]), type(m) == 'string' and m}
