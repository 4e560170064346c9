-- release: KEYS lock, record, queue, waiters; ARGV token, channel, keep
-- ms. 0: not held by token; 1: deleted; 2: handed to the oldest live
-- waiter. The record stays: it keeps the last fence.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local queued = redis.pcall('LLEN', KEYS[3])
if type(queued) ~= 'number' or queued == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
--[[ prelude ]]
return pass_on(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3])
