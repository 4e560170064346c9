-- Spread a lock's fence to a node: raise the fence of the lock name's
-- record (KEYS: the record, rediswire.Names.Record) to at least ARGV[2],
-- keeping its expiry; a record that is missing or unreadable is written
-- for the token ARGV[1] and owner ARGV[4], with the expiry ARGV[3] (ms)
-- that a grant gives it. Fences are below 2^53, exact in Lua numbers, and
-- written as the decimal text the caller sent. 1: the record is the
-- token's; 0: another's.
local want = tonumber(ARGV[2])
local r = redis.pcall('GET', KEYS[1])
local f, token, owner
if type(r) == 'string' then
  f, token, owner = string.match(r, '^(%d+) (%S+) (.*)$')
end
if not f or tonumber(f) >= 2^53 then
  redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[1] .. ' ' .. ARGV[4], 'PX', ARGV[3])
  return 1
end
if tonumber(f) < want then
  redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. token .. ' ' .. owner, 'KEEPTTL')
end
if token == ARGV[1] then
  return 1
end
return 0
