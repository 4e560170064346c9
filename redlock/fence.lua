-- Spread a lock's fence to a node: raise its fence counter to at least
-- ARGV[2], with the expiry ARGV[3] (ms) a grant gives it, and, if its lock
-- metadata is the token ARGV[1]'s, the fence there too, keeping the
-- metadata's expiry. KEYS: the fence counter, the metadata
-- (rediswire.Names Fence, Meta). Fences are below 2^53, exact in Lua
-- numbers, and written as the decimal text the caller sent. A counter that
-- holds no fence is replaced.
local want = tonumber(ARGV[2])
local have = redis.pcall('GET', KEYS[1])
if type(have) ~= 'string' or not string.match(have, '^%d+$') or tonumber(have) < want then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
local m = redis.pcall('GET', KEYS[2])
if type(m) == 'string' then
  local ok, d = pcall(cjson.decode, m)
  if ok and type(d) == 'table' and d.token == ARGV[1] then
    if (tonumber(d.fence) or 0) < want then
      d.fence = ARGV[2]
      redis.call('SET', KEYS[2], cjson.encode(d), 'KEEPTTL')
    end
    return 1
  end
end
return 0
