package rediswire

import "github.com/redis/go-redis/v9"

// prelude holds the Lua helpers every writing script shares. Numbers that can
// exceed 2^53 never occur: fences are microseconds since 1970 plus a count,
// about 2^51 today, and are written with %d, never tostring (which would give
// "1.7e+15").
const prelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function next_fence(k)
  local f = redis.call('INCR', k)
  if f == 1 then
    -- The counter was missing: seed it from the server's clock in
    -- microseconds, so fences stay above any issued before it was lost.
    local t = redis.call('TIME')
    redis.call('SET', k, t[1] .. string.format('%06d', tonumber(t[2])))
    f = redis.call('INCR', k)
  end
  return f
end
local function grant(lock, fence, meta, token, ttl, owner)
  redis.call('SET', lock, token, 'PX', ttl)
  local f = next_fence(fence)
  redis.call('SET', meta, cjson.encode({token = token, owner = owner, fence = string.format('%d', f)}), 'PX', ttl)
  return f
end
local function own_fence(lock, fence, meta, token, ttl, owner)
  local m = redis.call('GET', meta)
  if m then
    local ok, d = pcall(cjson.decode, m)
    if ok and type(d) == 'table' and d.token == token and tonumber(d.fence) then
      redis.call('PEXPIRE', lock, ttl)
      redis.call('PEXPIRE', meta, ttl)
      return tonumber(d.fence)
    end
  end
  return grant(lock, fence, meta, token, ttl, owner)
end
local function handoff(lock, fence, meta, queue, waiters, channel)
  local now
  while true do
    local w = redis.call('LPOP', queue)
    if not w then return false end
    local e = redis.call('HGET', waiters, w)
    if e then
      redis.call('HDEL', waiters, w)
      local exp, ttl, ch, owner = string.match(e, '^(%d+)|(%d+)|([^|]*)|(.*)$')
      now = now or now_ms()
      if exp and tonumber(exp) > now then
        local f = grant(lock, fence, meta, w, ttl, owner)
        if ch == '' then ch = channel end
        redis.call('PUBLISH', ch, string.format('%d', f) .. ' ' .. w)
        return true
      end
    end
  end
end
`

// The common paths of acquire and release come before the prelude, so they
// run without defining its functions (about a microsecond of server time).

// acquireScript: KEYS lock, fence, meta; ARGV token, ttl ms, owner.
// {1, fence} when held for token; {0, pttl, meta} when held by another.
var acquireScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  local f = redis.call('INCR', KEYS[2])
  if f == 1 then
    local t = redis.call('TIME')
    redis.call('SET', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
    f = redis.call('INCR', KEYS[2])
  end
  redis.call('SET', KEYS[3], cjson.encode({token = ARGV[1], owner = ARGV[3], fence = string.format('%d', f)}), 'PX', ARGV[2])
  return {1, f}
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[3])}
end
` + prelude + `
return {1, own_fence(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])}
`)

// releaseScript: KEYS lock, fence, meta, queue, waiters; ARGV token, channel.
// 0: not held by token; 1: deleted; 2: handed to the oldest live waiter.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[3])
  return 1
end
` + prelude + `
if handoff(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2]) then return 2 end
redis.call('DEL', KEYS[1], KEYS[3])
return 1
`)

// enqueueScript: KEYS lock, fence, meta, queue, waiters; ARGV token, ttl ms,
// owner, waiter lease ms, notify channel. Takes the lock if it is free or
// already handed to token ({1, fence}); otherwise adds or refreshes token's
// waiter entry and returns {0, pttl}.
var enqueueScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  if redis.call('HDEL', KEYS[5], ARGV[1]) == 1 then redis.call('LREM', KEYS[4], 1, ARGV[1]) end
  local f = redis.call('INCR', KEYS[2])
  if f == 1 then
    local t = redis.call('TIME')
    redis.call('SET', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
    f = redis.call('INCR', KEYS[2])
  end
  redis.call('SET', KEYS[3], cjson.encode({token = ARGV[1], owner = ARGV[3], fence = string.format('%d', f)}), 'PX', ARGV[2])
  return {1, f}
end
` + prelude + `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if redis.call('HDEL', KEYS[5], ARGV[1]) == 1 then redis.call('LREM', KEYS[4], 1, ARGV[1]) end
  return {1, own_fence(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])}
end
local lease = tonumber(ARGV[4])
local e = string.format('%d', now_ms() + lease) .. '|' .. ARGV[2] .. '|' .. ARGV[5] .. '|' .. ARGV[3]
if redis.call('HSET', KEYS[5], ARGV[1], e) == 1 then redis.call('RPUSH', KEYS[4], ARGV[1]) end
if redis.call('PTTL', KEYS[5]) < lease then
  redis.call('PEXPIRE', KEYS[4], lease)
  redis.call('PEXPIRE', KEYS[5], lease)
end
return {0, redis.call('PTTL', KEYS[1])}
`)

// leaveScript: KEYS lock, fence, meta, queue, waiters; ARGV token, channel.
// Removes token's waiter entry; if the lock was already handed to token, passes
// it on (or deletes it). 0: nothing held; 1: deleted; 2: passed on.
var leaveScript = redis.NewScript(prelude + `
if redis.call('HDEL', KEYS[5], ARGV[1]) == 1 then redis.call('LREM', KEYS[4], 1, ARGV[1]) end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if handoff(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2]) then return 2 end
redis.call('DEL', KEYS[1], KEYS[3])
return 1
`)

// renewScript: KEYS lock, meta; ARGV token, ttl ms. 1: extended; 0: not held.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`)

// inspectScript: KEYS lock, meta. {value, pttl, meta}; value nil when free.
var inspectScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return {} end
return {v, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}
`)
