-- leave: KEYS lock, record, queue, waiters; ARGV token, channel, keep ms.
-- Removes token's waiter entry; if the lock was already handed to token,
-- passes it on as release does. 0: nothing held; 1: deleted; 2: passed on.
--[[ prelude ]]
unqueue(KEYS[3], KEYS[4], ARGV[1])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
return pass_on(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3])
