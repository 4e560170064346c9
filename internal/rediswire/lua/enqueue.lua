-- enqueue: KEYS lock, counter, meta, queue, waiters; ARGV token, ttl ms,
-- owner, waiter lease ms, channel, keep ms.
-- Takes the lock if it is free or already handed to token ({1, fence});
-- otherwise adds token's waiter entry at the back of the queue, or
-- refreshes its expiry keeping its place, and returns {0, pttl}.
local last = last_fence(KEYS[2], KEYS[1], KEYS[3], ARGV[1])
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  unqueue(KEYS[4], KEYS[5], ARGV[1])
  return {1, record(KEYS[1], KEYS[2], KEYS[3], last, ARGV[1], ARGV[2], ARGV[3], ARGV[6])}
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  unqueue(KEYS[4], KEYS[5], ARGV[1])
  return {1, own_fence(KEYS[1], KEYS[2], KEYS[3], last, ARGV[1], ARGV[2], ARGV[3], ARGV[6])}
end
local lease = tonumber(ARGV[4])
local e = string.format('%d', now_ms() + lease) .. '|' .. ARGV[2] .. '|' .. ARGV[5] .. '|' .. ARGV[3]
if redis.call('HSET', KEYS[5], ARGV[1], e) == 1 then
  redis.call('RPUSH', KEYS[4], ARGV[1])
end
if redis.call('PTTL', KEYS[5]) < lease then
  redis.call('PEXPIRE', KEYS[4], lease)
  redis.call('PEXPIRE', KEYS[5], lease)
end
return {0, redis.call('PTTL', KEYS[1])}
