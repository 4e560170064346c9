-- The helpers of every script that grants a lock (acquire, enqueue,
-- release, leave): the fence rule, the checks and the expiry of the fence
-- counter, the grant and the hand-over. Each of those scripts is this
-- prelude followed by its own body, sent as one script.
--
-- Fences are microseconds since 1970 plus a count: about 2^51 today, exact
-- in Lua's numbers, and written with %d, never tostring ("1.7e+15").

-- max_lead is how far ahead of the server's clock, in microseconds, a
-- caller's fence floor may be (two seconds).
local max_lead = 2000000

-- now_ms is the server's clock in milliseconds.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- fence_of reads a fence counter: its value, 0 when it is missing, or nil
-- and what is wrong with it.
local function fence_of(counter)
  local v = redis.pcall('GET', counter)
  if not v then
    return 0
  end
  if type(v) == 'table' then
    return nil, 'holds no string'
  end
  local n = string.match(v, '^%d+$') and tonumber(v)
  if not n or n >= 2^53 then
    return nil, 'holds "' .. string.gsub(string.sub(v, 1, 32), '[^%w%p ]', '?') .. '", not a fence'
  end
  return n
end

-- last_fence is fence_of for a script about to grant token the lock. Called
-- before the script writes anything, it fails the script on a bad counter
-- with nothing changed, except that a lock token already holds (taken by an
-- earlier attempt of the same request) is given back: it could not be
-- fenced.
local function last_fence(counter, lock, meta, token)
  local last, bad = fence_of(counter)
  if last then
    return last
  end
  if redis.call('GET', lock) == token then
    redis.call('DEL', lock, meta)
  end
  error(redis.error_reply('BADFENCE ' .. bad))
end

-- give_back fails the script if r is an error reply (a write refused, out
-- of memory), deleting the lock first: no lock is left without a fence.
local function give_back(r, lock, meta)
  if type(r) == 'table' and r.err then
    redis.call('DEL', lock, meta)
    error(r)
  end
end

-- record makes the fence of a grant, by the one fence rule: one above the
-- counter's last fence, and never below the server's clock in microseconds,
-- so that a counter that is stale or missing (a restore, a failover to a
-- replica that missed writes, FLUSHALL, its own expiry) never repeats or
-- lowers a fence. The counter expires keep ms after the lock's ttl would
-- end. Then the holder's metadata is written, with the lock's expiry.
local function record(lock, counter, meta, last, token, ttl, owner, keep)
  local t = redis.call('TIME')
  local f = math.max(last + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
  local fence = string.format('%d', f)
  give_back(redis.pcall('SET', counter, fence, 'PX', tonumber(ttl) + tonumber(keep)), lock, meta)
  give_back(redis.pcall('SET', meta, cjson.encode({token = token, owner = owner, fence = fence}), 'PX', ttl), lock, meta)
  return f
end

-- grant sets the lock for token and records its fence.
local function grant(lock, counter, meta, last, token, ttl, owner, keep)
  redis.call('SET', lock, token, 'PX', ttl)
  return record(lock, counter, meta, last, token, ttl, owner, keep)
end

-- own_fence answers a request whose lock already holds its token (a retry,
-- or a waiter the lock was handed to): it extends the lock and returns the
-- fence of the metadata, or grants anew when the metadata is not token's.
local function own_fence(lock, counter, meta, last, token, ttl, owner, keep)
  local m = redis.pcall('GET', meta)
  if type(m) == 'string' then
    local ok, d = pcall(cjson.decode, m)
    if ok and type(d) == 'table' and d.token == token and tonumber(d.fence) then
      redis.call('PEXPIRE', lock, ttl)
      redis.call('PEXPIRE', meta, ttl)
      return tonumber(d.fence)
    end
  end
  return grant(lock, counter, meta, last, token, ttl, owner, keep)
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
local function pass_on(lock, counter, meta, queue, waiters, channel, keep)
  local last = fence_of(counter)
  local now
  while last do
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
        local f = grant(lock, counter, meta, last, w, ttl, owner, keep)
        if ch == '' then
          ch = channel
        end
        redis.call('PUBLISH', ch, string.format('%d', f) .. ' ' .. w)
        return 2
      end
    end
  end
  redis.call('DEL', lock, meta)
  return 1
end
