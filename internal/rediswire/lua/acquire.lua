-- acquire: KEYS lock, record; ARGV token, ttl ms, owner, keep ms, floor.
-- {1, fence} when the lock is held for token; {0, pttl, holder's token,
-- record} when it is held by another (record false when there is none).
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return {1, stamp(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2], ARGV[4], ARGV[5])}
end
--[[ prelude ]]
local v = redis.call('GET', KEYS[1])
if v ~= ARGV[1] then
  local r = redis.pcall('GET', KEYS[2])
  return {0, redis.call('PTTL', KEYS[1]), v, type(r) == 'string' and r}
end
return {1, own_fence(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2], ARGV[4], ARGV[5])}
