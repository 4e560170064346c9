-- Raise a node's fence counter to at least ARGV[2], and, if the node's lock
-- metadata is the token ARGV[1]'s, its fence too, keeping the metadata's
-- expiry. KEYS: the fence counter, the metadata (rediswire.Names Fence, Meta).
-- Fences are below 2^53, exact in Lua numbers, and written back as the
-- decimal text the caller sent.
local want = tonumber(ARGV[2])
local have = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if have < want then
  redis.call('SET', KEYS[1], ARGV[2])
end
local m = redis.call('GET', KEYS[2])
if m then
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
