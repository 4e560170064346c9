-- enqueue: KEYS lock, record, queue, waiters; ARGV token, ttl ms, owner,
-- waiter lease ms, channel, keep ms.
-- Takes the lock if it is free or already handed to token ({1, fence});
-- otherwise adds token's waiter entry at the back of the queue, or
-- refreshes its expiry keeping its place, and returns {0, pttl}.
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  if redis.pcall('HDEL', KEYS[4], ARGV[1]) == 1 then
    redis.pcall('LREM', KEYS[3], 1, ARGV[1])
  end
  return {1, stamp(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2], ARGV[6], 0)}
end
--[[ prelude ]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  unqueue(KEYS[3], KEYS[4], ARGV[1])
  return {1, own_fence(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2], ARGV[6], 0)}
end
local lease = tonumber(ARGV[4])
local e = string.format('%d', now_ms() + lease) .. '|' .. ARGV[2] .. '|' .. ARGV[5] .. '|' .. ARGV[3]
if redis.call('HSET', KEYS[4], ARGV[1], e) == 1 then
  redis.call('RPUSH', KEYS[3], ARGV[1])
end
if redis.call('PTTL', KEYS[4]) < lease then
  redis.call('PEXPIRE', KEYS[3], lease)
  redis.call('PEXPIRE', KEYS[4], lease)
end
return {0, redis.call('PTTL', KEYS[1])}
