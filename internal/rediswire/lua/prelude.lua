-- The helpers of the scripts that grant a lock, for their slower paths:
-- each of those scripts is fence.lua, its own fast path, then this file
-- (where its --[[ prelude ]] line stands), then the rest of its own file.

-- now_ms is the server's clock in milliseconds.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- record_of reads a record: its fence, token and owner, or nil.
local function record_of(record)
  local r = redis.pcall('GET', record)
  if type(r) ~= 'string' then
    return nil
  end
  local f, token, owner = string.match(r, '^(%d+) (%S+) (.*)$')
  f = tonumber(f)
  if not f or f >= 2^53 then
    return nil
  end
  return f, token, owner
end

-- own_fence answers a request whose lock already holds its token (a retry,
-- or a waiter the lock was handed to): it extends the lock and its record
-- and returns the record's fence, or makes a new one when the record is not
-- token's.
local function own_fence(lock, record, token, owner, ttl, keep, floor)
  redis.call('PEXPIRE', lock, ttl)
  local f, holder = record_of(record)
  if holder == token then
    redis.call('PEXPIRE', record, ttl + keep)
    return f
  end
  return stamp(lock, record, token, owner, ttl, keep, floor)
end

-- unqueue removes token's waiter entry, if it has one.
local function unqueue(queue, waiters, token)
  if redis.pcall('HDEL', waiters, token) == 1 then
    redis.pcall('LREM', queue, 1, token)
  end
end

-- pass_on frees a lock whose holder is done with it: it hands it to the
-- oldest queued waiter whose entry has not expired by the server's clock
-- and publishes "<fence> <token>" on the channel the entry names (channel
-- when it names none), and returns 2; or, when no live waiter is queued or
-- no fence can be made, deletes the lock and returns 1.
local function pass_on(lock, record, queue, waiters, channel, keep)
  local now
  while true do
    local w = redis.pcall('LPOP', queue)
    if type(w) ~= 'string' then
      break
    end
    local e = redis.pcall('HGET', waiters, w)
    if type(e) == 'string' then
      redis.call('HDEL', waiters, w)
      local exp, ttl, ch, owner = string.match(e, '^(%d+)|(%d+)|([^|]*)|(.*)$')
      now = now or now_ms()
      if exp and tonumber(exp) > now then
        redis.call('SET', lock, w, 'PX', ttl)
        local ok, f = pcall(stamp, lock, record, w, owner, ttl, keep, 0)
        if not ok then
          return 1 -- stamp deleted the lock
        end
        if ch == '' then
          ch = channel
        end
        redis.call('PUBLISH', ch, string.format('%d', f) .. ' ' .. w)
        return 2
      end
    end
  end
  redis.call('DEL', lock)
  return 1
end
