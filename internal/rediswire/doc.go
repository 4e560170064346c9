// Package rediswire is the wire scheme distlock uses on a Redis server: the
// key names, the Lua scripts and the calls that run them. The single-instance
// driver (redislock) and Redlock (each node) share it, so a lock is laid out
// the same way on every server and any language can interoperate.
//
// # Keys
//
// For a lock name L (the user's prefix followed by the key):
//
//	L                  string: the holder's token, with a PX expiry (the lock's TTL)
//	distlock:{T}:f:L   string: the fence counter, the last fence as decimal text,
//	                   expiring FenceKeep (1h) after the TTL of the grant that set it
//	distlock:{T}:m:L   string: the holder's metadata, JSON
//	                   {"token":"...","owner":"...","fence":"<decimal>"}, with L's expiry
//	distlock:{T}:q:L   list: tokens of queued waiters, oldest first
//	distlock:{T}:w:L   hash: waiter token -> "<expiry ms>|<ttl ms>|<channel>|<owner>"
//	distlock:{T}:c:L   pub/sub channel of a hand-over to a waiter whose entry names none
//
// The queue and the waiters' hash expire with the longest waiter's lease.
// T is the decimal text of the smallest non-negative integer whose Redis
// Cluster hash slot equals the slot of L (CRC16/XMODEM of L's hash tag, or of
// L, modulo 16384). The first '{' of every auxiliary name opens {T}, so it
// hashes by T whatever braces L contains, and every key of a lock lives in
// one slot: scripts that touch them all work on a cluster. The lock key itself
// is exactly L, and its value exactly the token, which is what redsync and
// bsm/redislock write: their locks and ours exclude each other.
//
// # Reserved names
//
// Every key distlock writes besides L begins with "distlock:{"
// (ReservedPrefix). A lock name that begins with it is refused with an
// error wrapping distlock.ErrInvalid (CheckLock), before any request, and so
// is a prefix that begins with it (CheckPrefix): a lock on another lock's
// counter or metadata would break that lock's grants. The rest of
// "distlock:" is the user's: "distlock:jobs" or "distlock:" is a lock name
// like any other. The channels distlock:notify:<random> and
// distlock:{T}:c:L are pub/sub channels, which never collide with keys.
//
// # Fences
//
// Every grant (an acquire, an enqueue that takes the lock, the hand-over to
// a queued waiter, the re-grant of a retried request whose metadata is
// gone) makes its fence by one rule, written once (record, in the prelude):
//
//	next fence = max(last fence + 1, the server's TIME in microseconds)
//
// and sets the counter to it. So a counter that is stale (a restore of an
// older snapshot, a failover to a replica that missed the last writes) or
// missing (a restart without persistence, FLUSHALL, eviction, its own
// expiry) can never repeat or lower a fence once the server's clock has
// passed every fence the counter issued. It has, microseconds after the
// last grant: a fence is ahead of the clock only by the grants made faster
// than one per microsecond (a Redis server runs a few hundred thousand
// scripts a second at most), and the clock gains one per microsecond. The
// one assumption: the server's clock does not step back (across a
// failover: the new primary's clock is not behind the old one's by as much
// as the failover took).
//
// The counter is therefore not needed once its lock is free; it is kept
// FenceKeep (one hour) after the TTL of the grant that last set it
// (renewals do not extend it), which keeps fences strictly increasing even
// through a step back of the server's clock shorter than that, and bounds
// what a key leaves behind: nothing, an hour after its last lock's TTL.
// Counters written by earlier versions of distlock have no expiry; the next
// grant gives them one, and deleting them is safe under the same rule.
//
// Fences are decimal text below 2^53 (about 2^51 today), exact in Lua's
// numbers and written with %d. A counter that holds anything else (another
// type, text that is not such a number) makes every grant of its lock fail,
// before the script writes anything, with an error wrapping
// distlock.ErrInvalid that names the counter; a lock the same request had
// already taken (a retry) is given back, and a release that would hand the
// lock to a waiter deletes it instead. No lock is ever left set without a
// fence. Deleting the counter mends it.
//
// # Operations (one round trip each)
//
//   - Acquire (acquire.lua): read the counter; if L is missing, SET L token
//     PX ttl NX, make the fence (never below the floor the caller may give:
//     Redlock asks all its nodes for the same) and SET the counter and the
//     metadata. If L
//     already holds token (a retried request), extend L and the metadata by
//     ttl and return the fence in the metadata. Otherwise answer PTTL L and
//     the metadata. Uncontended, the server runs five commands (GET, SET,
//     TIME, SET, SET) in one EVALSHA.
//   - Release (release.lua): only if GET L equals the token: with no waiter
//     queued, DEL L and the metadata (three commands: GET, LLEN, DEL).
//     Otherwise pop waiters until one whose entry has not expired by the
//     server's TIME, grant it the lock as Acquire would (its TTL and owner)
//     and PUBLISH "<fence> <token>" on the channel its entry names; if none
//     is live, DEL L and the metadata.
//   - Renew (renew.lua): only if GET L equals the token, PEXPIRE L and the
//     metadata.
//   - Inspect (inspect.lua): GET L, PTTL L and the metadata, atomically.
//   - Enqueue (enqueue.lua, a blocking waiter): take L if it is missing or
//     already handed to the token; otherwise put the token at the back of
//     the queue (or refresh its entry's expiry, keeping its place), naming
//     the channel the waiter listens on. The single-instance driver gives
//     each process one channel of its own (distlock:notify:<random>), so a
//     hand-over reaches only the process that waits, and each process needs
//     one subscription whatever the number of keys.
//   - Leave (leave.lua, a waiter that gives up): remove its entry; if L was
//     handed to it meanwhile, pass L on as Release does.
//
// # Other clients
//
// Another program takes part by running the scripts below with the same
// KEYS and ARGV: each script that grants a lock is the prelude followed by
// its file, sent as one script. keep is FenceKeep in milliseconds. It must
// write nothing else under "distlock:{". Where it reads or writes the
// metadata itself, its fence must be a JSON string of decimal digits
// ("fence":"1796162258758762"), not a JSON number: a reader that finds a
// number reports the holder without its owner and fence.
//
// # Deadlines
//
// A driver's calls must return by their ctx's deadline. go-redis honours
// ctx deadlines only with ContextTimeoutEnabled (HonoursContext); without
// it a paused server holds a call until the client's own ReadTimeout. Run
// makes a call return by ctx's end anyway: on such a client it runs the
// call in a goroutine and, when ctx ends first, returns an error of unknown
// outcome while the call runs on (a Background, which the driver's Close
// waits for, at most CloseWait). On a client that honours ctx it is a plain
// call.
//
// # Scripts
//
// lua/prelude.lua:
//
//	-- The helpers of every script that grants a lock (acquire, enqueue,
//	-- release, leave): the fence rule, the checks and the expiry of the fence
//	-- counter, the grant and the hand-over. Each of those scripts is this
//	-- prelude followed by its own body, sent as one script.
//	--
//	-- Fences are microseconds since 1970 plus a count: about 2^51 today, exact
//	-- in Lua's numbers, and written with %d, never tostring ("1.7e+15").
//
//	-- max_lead is how far ahead of the server's clock, in microseconds, a
//	-- caller's fence floor may be (two seconds).
//	local max_lead = 2000000
//
//	-- now_ms is the server's clock in milliseconds.
//	local function now_ms()
//	  local t = redis.call('TIME')
//	  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
//	end
//
//	-- fence_of reads a fence counter: its value, 0 when it is missing, or nil
//	-- and what is wrong with it.
//	local function fence_of(counter)
//	  local v = redis.pcall('GET', counter)
//	  if not v then
//	    return 0
//	  end
//	  if type(v) == 'table' then
//	    return nil, 'holds no string'
//	  end
//	  local n = string.match(v, '^%d+$') and tonumber(v)
//	  if not n or n >= 2^53 then
//	    return nil, 'holds "' .. string.gsub(string.sub(v, 1, 32), '[^%w%p ]', '?') .. '", not a fence'
//	  end
//	  return n
//	end
//
//	-- last_fence is fence_of for a script about to grant token the lock. Called
//	-- before the script writes anything, it fails the script on a bad counter
//	-- with nothing changed, except that a lock token already holds (taken by an
//	-- earlier attempt of the same request) is given back: it could not be
//	-- fenced.
//	local function last_fence(counter, lock, meta, token)
//	  local last, bad = fence_of(counter)
//	  if last then
//	    return last
//	  end
//	  if redis.call('GET', lock) == token then
//	    redis.call('DEL', lock, meta)
//	  end
//	  error(redis.error_reply('BADFENCE ' .. bad))
//	end
//
//	-- give_back fails the script if r is an error reply (a write refused, out
//	-- of memory), deleting the lock first: no lock is left without a fence.
//	local function give_back(r, lock, meta)
//	  if type(r) == 'table' and r.err then
//	    redis.call('DEL', lock, meta)
//	    error(r)
//	  end
//	end
//
//	-- record makes the fence of a grant, by the one fence rule: one above the
//	-- counter's last fence, and never below the server's clock in microseconds,
//	-- so that a counter that is stale or missing (a restore, a failover to a
//	-- replica that missed writes, FLUSHALL, its own expiry) never repeats or
//	-- lowers a fence. The counter expires keep ms after the lock's ttl would
//	-- end. Then the holder's metadata is written, with the lock's expiry.
//	local function record(lock, counter, meta, last, token, ttl, owner, keep)
//	  local t = redis.call('TIME')
//	  local f = math.max(last + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
//	  local fence = string.format('%d', f)
//	  give_back(redis.pcall('SET', counter, fence, 'PX', tonumber(ttl) + tonumber(keep)), lock, meta)
//	  give_back(redis.pcall('SET', meta, cjson.encode({token = token, owner = owner, fence = fence}), 'PX', ttl), lock, meta)
//	  return f
//	end
//
//	-- grant sets the lock for token and records its fence.
//	local function grant(lock, counter, meta, last, token, ttl, owner, keep)
//	  redis.call('SET', lock, token, 'PX', ttl)
//	  return record(lock, counter, meta, last, token, ttl, owner, keep)
//	end
//
//	-- own_fence answers a request whose lock already holds its token (a retry,
//	-- or a waiter the lock was handed to): it extends the lock and returns the
//	-- fence of the metadata, or grants anew when the metadata is not token's.
//	local function own_fence(lock, counter, meta, last, token, ttl, owner, keep)
//	  local m = redis.pcall('GET', meta)
//	  if type(m) == 'string' then
//	    local ok, d = pcall(cjson.decode, m)
//	    if ok and type(d) == 'table' and d.token == token and tonumber(d.fence) then
//	      redis.call('PEXPIRE', lock, ttl)
//	      redis.call('PEXPIRE', meta, ttl)
//	      return tonumber(d.fence)
//	    end
//	  end
//	  return grant(lock, counter, meta, last, token, ttl, owner, keep)
//	end
//
//	-- unqueue removes token's waiter entry, if it has one.
//	local function unqueue(queue, waiters, token)
//	  if redis.pcall('HDEL', waiters, token) == 1 then
//	    redis.pcall('LREM', queue, 1, token)
//	  end
//	end
//
//	-- pass_on frees a lock whose holder is done with it: it hands it to the
//	-- oldest queued waiter whose entry has not expired by the server's clock
//	-- and publishes "<fence> <token>" on the channel the entry names (channel
//	-- when it names none), and returns 2; or, when no live waiter is queued or
//	-- no fence can be made, deletes the lock and returns 1.
//	local function pass_on(lock, counter, meta, queue, waiters, channel, keep)
//	  local last = fence_of(counter)
//	  local now
//	  while last do
//	    local w = redis.pcall('LPOP', queue)
//	    if type(w) ~= 'string' then
//	      break
//	    end
//	    local e = redis.pcall('HGET', waiters, w)
//	    if type(e) == 'string' then
//	      redis.call('HDEL', waiters, w)
//	      local exp, ttl, ch, owner = string.match(e, '^(%d+)|(%d+)|([^|]*)|(.*)$')
//	      now = now or now_ms()
//	      if exp and tonumber(exp) > now then
//	        local f = grant(lock, counter, meta, last, w, ttl, owner, keep)
//	        if ch == '' then
//	          ch = channel
//	        end
//	        redis.call('PUBLISH', ch, string.format('%d', f) .. ' ' .. w)
//	        return 2
//	      end
//	    end
//	  end
//	  redis.call('DEL', lock, meta)
//	  return 1
//	end
//
// lua/acquire.lua:
//
//	-- acquire: KEYS lock, counter, meta; ARGV token, ttl ms, owner, keep ms,
//	-- floor. {1, fence} when the lock is held for token; {0, pttl, meta} when
//	-- it is held by another (meta false when there is none). A new fence is at
//	-- least floor (0: none), so that servers whose counters agree, asked by
//	-- one caller for one lock (Redlock), make the same fence; a floor more than
//	-- max_lead ahead of the server's clock is ignored: a caller whose clock is
//	-- ahead must not carry fences past the server's, which a counter that
//	-- expired could then fall below.
//	local floor = tonumber(ARGV[5]) or 0
//	if floor > 0 then
//	  local t = redis.call('TIME')
//	  if floor > tonumber(t[1]) * 1000000 + tonumber(t[2]) + max_lead then
//	    floor = 0
//	  end
//	end
//	local last = math.max(last_fence(KEYS[2], KEYS[1], KEYS[3], ARGV[1]), floor - 1)
//	if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
//	  return {1, record(KEYS[1], KEYS[2], KEYS[3], last, ARGV[1], ARGV[2], ARGV[3], ARGV[4])}
//	end
//	if redis.call('GET', KEYS[1]) ~= ARGV[1] then
//	  local m = redis.pcall('GET', KEYS[3])
//	  return {0, redis.call('PTTL', KEYS[1]), type(m) == 'string' and m}
//	end
//	return {1, own_fence(KEYS[1], KEYS[2], KEYS[3], last, ARGV[1], ARGV[2], ARGV[3], ARGV[4])}
//
// lua/release.lua:
//
//	-- release: KEYS lock, counter, meta, queue, waiters; ARGV token, channel,
//	-- keep ms. 0: not held by token; 1: deleted; 2: handed to the oldest live
//	-- waiter.
//	if redis.call('GET', KEYS[1]) ~= ARGV[1] then
//	  return 0
//	end
//	local queued = redis.pcall('LLEN', KEYS[4])
//	if type(queued) ~= 'number' or queued == 0 then
//	  redis.call('DEL', KEYS[1], KEYS[3])
//	  return 1
//	end
//	return pass_on(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[3])
//
// lua/renew.lua:
//
//	-- renew: KEYS lock, meta; ARGV token, ttl ms. 1: extended; 0: not held.
//	if redis.call('GET', KEYS[1]) ~= ARGV[1] then
//	  return 0
//	end
//	redis.call('PEXPIRE', KEYS[1], ARGV[2])
//	redis.call('PEXPIRE', KEYS[2], ARGV[2])
//	return 1
//
// lua/inspect.lua:
//
//	-- inspect: KEYS lock, meta. {token, pttl, meta}, meta false when there is
//	-- none; {} when the lock is free.
//	local v = redis.call('GET', KEYS[1])
//	if not v then
//	  return {}
//	end
//	local m = redis.pcall('GET', KEYS[2])
//	return {v, redis.call('PTTL', KEYS[1]), type(m) == 'string' and m}
//
// lua/enqueue.lua:
//
//	-- enqueue: KEYS lock, counter, meta, queue, waiters; ARGV token, ttl ms,
//	-- owner, waiter lease ms, channel, keep ms.
//	-- Takes the lock if it is free or already handed to token ({1, fence});
//	-- otherwise adds token's waiter entry at the back of the queue, or
//	-- refreshes its expiry keeping its place, and returns {0, pttl}.
//	local last = last_fence(KEYS[2], KEYS[1], KEYS[3], ARGV[1])
//	if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
//	  unqueue(KEYS[4], KEYS[5], ARGV[1])
//	  return {1, record(KEYS[1], KEYS[2], KEYS[3], last, ARGV[1], ARGV[2], ARGV[3], ARGV[6])}
//	end
//	if redis.call('GET', KEYS[1]) == ARGV[1] then
//	  unqueue(KEYS[4], KEYS[5], ARGV[1])
//	  return {1, own_fence(KEYS[1], KEYS[2], KEYS[3], last, ARGV[1], ARGV[2], ARGV[3], ARGV[6])}
//	end
//	local lease = tonumber(ARGV[4])
//	local e = string.format('%d', now_ms() + lease) .. '|' .. ARGV[2] .. '|' .. ARGV[5] .. '|' .. ARGV[3]
//	if redis.call('HSET', KEYS[5], ARGV[1], e) == 1 then
//	  redis.call('RPUSH', KEYS[4], ARGV[1])
//	end
//	if redis.call('PTTL', KEYS[5]) < lease then
//	  redis.call('PEXPIRE', KEYS[4], lease)
//	  redis.call('PEXPIRE', KEYS[5], lease)
//	end
//	return {0, redis.call('PTTL', KEYS[1])}
//
// lua/leave.lua:
//
//	-- leave: KEYS lock, counter, meta, queue, waiters; ARGV token, channel,
//	-- keep ms. Removes token's waiter entry; if the lock was already handed to
//	-- token, passes it on as release does. 0: nothing held; 1: deleted; 2:
//	-- passed on.
//	unqueue(KEYS[4], KEYS[5], ARGV[1])
//	if redis.call('GET', KEYS[1]) ~= ARGV[1] then
//	  return 0
//	end
//	return pass_on(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[2], ARGV[3])
package rediswire
