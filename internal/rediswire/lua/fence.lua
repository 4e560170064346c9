-- The fence rule, written once. Every script that grants a lock begins
-- with this file.
--
-- A lock name's record (KEYS: the record) is a string,
-- "<fence> <token> <owner>": the last fence made for the name, and the
-- token and owner of the grant it was made for. It is written at every
-- grant, with an expiry of the lock's TTL plus keep ms, and a release
-- leaves it: it is the fence counter, and, while the lock key holds the
-- same token, the holder's metadata.
--
-- Fences are microseconds since 1970 plus a count: about 2^51 today, exact
-- in Lua's numbers, and written with %d, never tostring ("1.7e+15").

-- stamp makes the fence of a grant to token and writes the record:
--
--   next fence = max(last fence + 1, the server's TIME in microseconds)
--
-- (and at least floor, when the caller gives one no more than two seconds
-- ahead of the server's clock: Redlock asks all its nodes for the same).
-- So a record that is stale or missing (a restore of an older snapshot, a
-- failover to a replica that missed writes, FLUSHALL, its own expiry)
-- never repeats or lowers a fence. The common case is one command: the
-- clock is ahead of the last fence, and SET ... GET writes the new record
-- and reads the old one together. A record of another type fails the
-- script with the lock deleted: no lock is left without a fence.
local function stamp(lock, record, token, owner, ttl, keep, floor)
  local t = redis.call('TIME')
  local now = t[1] * 1000000 + t[2]
  local f = now
  floor = tonumber(floor) or 0
  if floor > f and floor <= now + 2000000 then
    f = floor
  end
  local hold = ttl + keep
  local old = redis.pcall('SET', record, string.format('%d', f) .. ' ' .. token .. ' ' .. owner, 'PX', hold, 'GET')
  if old then
    if type(old) ~= 'string' then
      redis.call('DEL', lock)
      error(redis.error_reply('BADFENCE holds no string: ' .. tostring(old.err)))
    end
    local last = tonumber(string.match(old, '^(%d+) '))
    if last and last < 2^53 and last >= f then
      f = last + 1
      redis.call('SET', record, string.format('%d', f) .. ' ' .. token .. ' ' .. owner, 'PX', hold)
    end
  end
  return f
end
