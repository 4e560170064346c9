-- acquire: KEYS lock, counter, meta; ARGV token, ttl ms, owner, keep ms,
-- floor. {1, fence} when the lock is held for token; {0, pttl, meta} when
-- it is held by another (meta false when there is none). A new fence is at
-- least floor (0: none), so that servers whose counters agree, asked by
-- one caller for one lock (Redlock), make the same fence; a floor more than
-- max_lead ahead of the server's clock is ignored: a caller whose clock is
-- ahead must not carry fences past the server's, which a counter that
-- expired could then fall below.
local floor = tonumber(ARGV[5]) or 0
if floor > 0 then
  local t = redis.call('TIME')
  if floor > tonumber(t[1]) * 1000000 + tonumber(t[2]) + max_lead then
    floor = 0
  end
end
local last = math.max(last_fence(KEYS[2], KEYS[1], KEYS[3], ARGV[1]), floor - 1)
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return {1, record(KEYS[1], KEYS[2], KEYS[3], last, ARGV[1], ARGV[2], ARGV[3], ARGV[4])}
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  local m = redis.pcall('GET', KEYS[3])
  return {0, redis.call('PTTL', KEYS[1]), type(m) == 'string' and m}
end
return {1, own_fence(KEYS[1], KEYS[2], KEYS[3], last, ARGV[1], ARGV[2], ARGV[3], ARGV[4])}
