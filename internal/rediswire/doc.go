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
//	distlock:{T}:r:L   string: the record, "<fence> <token> <owner>": the last fence
//	                   made for L and the token and owner of that grant; it expires
//	                   FenceKeep (1h) after the lock's TTL, counted from the last
//	                   grant or renewal, and a release leaves it
//	distlock:{T}:q:L   list: tokens of queued waiters, oldest first
//	distlock:{T}:w:L   hash: waiter token -> "<expiry ms>|<ttl ms>|<channel>|<owner>"
//	distlock:{T}:c:L   pub/sub channel of a hand-over to a waiter whose entry names none
//
// The record is the fence counter and, while L holds the same token, the
// holder's metadata: status shows the owner and fence of the record only
// when its token is L's value (a lock taken by redsync or bsm/redislock
// shows with fence 0). Tokens never contain white space. The queue and the
// waiters' hash expire with the longest waiter's lease.
//
// T is the decimal text of the smallest non-negative integer whose Redis
// Cluster hash slot equals the slot of L (CRC16/XMODEM of L's hash tag, or of
// L, modulo 16384). The first '{' of every auxiliary name opens {T}, so it
// hashes by T whatever braces L contains, and every key of a lock lives in
// one slot: scripts that touch them all work on a cluster. The lock key itself
// is exactly L, and its value exactly the token, which is what redsync and
// bsm/redislock write: their locks and ours exclude each other.
//
// Earlier versions of distlock kept a counter (distlock:{T}:f:L, no expiry)
// and JSON metadata (distlock:{T}:m:L); this version reads neither, and
// both may be deleted. Clients of both versions on one key keep excluding
// each other, but their fences are not ordered: upgrade them together.
//
// # Reserved names
//
// Every key distlock writes besides L begins with "distlock:{"
// (ReservedPrefix). A lock name that begins with it is refused with an
// error wrapping distlock.ErrInvalid (CheckLock), before any request, and so
// is a prefix that begins with it (CheckPrefix): a lock on another lock's
// record would break that lock's grants. The rest of "distlock:" is the
// user's: "distlock:jobs" or "distlock:" is a lock name like any other. The
// channels distlock:notify:<random> and distlock:{T}:c:L are pub/sub
// channels, which never collide with keys.
//
// # Fences
//
// Every grant (an acquire, an enqueue that takes the lock, the hand-over to
// a queued waiter, the re-grant of a retried request whose record is gone)
// makes its fence by one rule, written once (stamp, in fence.lua):
//
//	next fence = max(last fence + 1, the server's TIME in microseconds)
//
// and writes the record with it. So a record that is stale (a restore of
// an older snapshot, a failover to a replica that missed the last writes)
// or missing (a restart without persistence, FLUSHALL, eviction, its own
// expiry) can never repeat or lower a fence once the server's clock has
// passed every fence it carried. It has, microseconds after the grant: a
// fence is ahead of the clock only by grants made faster than one per
// microsecond (a Redis server runs a few hundred thousand scripts a second
// at most), and the clock gains one per microsecond. The one assumption:
// the server's clock does not step back (across a failover: the new
// primary's clock is not behind the old one's by as much as the failover
// took). Redlock passes a floor, the same for every node (see AcquireAbove);
// a node ignores a floor more than two seconds ahead of its own clock.
//
// The record is therefore not needed once its lock is free; it is kept
// FenceKeep (one hour) after the lock's TTL, which keeps fences strictly
// increasing even through a step back of the server's clock shorter than
// that, and bounds what a key leaves behind: nothing, an hour after its
// last lock's TTL.
//
// Fences are decimal text below 2^53 (about 2^51 today), exact in Lua's
// numbers and written with %d. A record that is a string but not a record
// (or holds a number from 2^53 up) carries no fence: the next grant makes
// its fence from the clock and writes it anew. A record of another type
// makes every grant of its lock fail, with the lock deleted, with an error
// wrapping distlock.ErrInvalid that names the record; a release that would
// hand the lock to a waiter deletes it instead. No lock is ever left set
// without a fence. Deleting the record mends it.
//
// # Operations (one round trip each)
//
//   - Acquire (acquire.lua): SET L token PX ttl NX; if that took it, stamp
//     the fence: TIME, then SET the record with GET, which writes the new
//     record and reads the old one in one command (a second SET only when
//     the old fence is not below the clock). Uncontended, the server runs
//     three commands (SET, TIME, SET) in one EVALSHA. If L already holds
//     token (a retried request), extend L and the record and return the
//     record's fence. Otherwise answer PTTL L, L's value and the record.
//   - Release (release.lua): only if GET L equals the token: with no waiter
//     queued, DEL L (three commands: GET, LLEN, DEL). Otherwise pop waiters
//     until one whose entry has not expired by the server's TIME, grant it
//     the lock as Acquire would (its TTL and owner) and PUBLISH
//     "<fence> <token>" on the channel its entry names; if none is live,
//     DEL L. The record stays.
//   - Renew (renew.lua): only if GET L equals the token, PEXPIRE L by the
//     TTL and the record by the TTL and FenceKeep.
//   - Inspect (inspect.lua): GET L, PTTL L and the record, atomically.
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
// SET with GET needs Redis 6.2 or later.
//
// # Other clients
//
// Another program takes part by running the scripts below with the same
// KEYS and ARGV: each script that grants a lock (acquire, enqueue,
// release, leave) is fence.lua, then its own file with prelude.lua in
// place of its "--[[ prelude ]]" line, sent as one script; keep is
// FenceKeep in milliseconds. It must write nothing else under "distlock:{".
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
// lua/fence.lua:
//
//	-- The fence rule, written once. Every script that grants a lock begins
//	-- with this file.
//	--
//	-- A lock name's record (KEYS: the record) is a string,
//	-- "<fence> <token> <owner>": the last fence made for the name, and the
//	-- token and owner of the grant it was made for. It is written at every
//	-- grant, with an expiry of the lock's TTL plus keep ms, and a release
//	-- leaves it: it is the fence counter, and, while the lock key holds the
//	-- same token, the holder's metadata.
//	--
//	-- Fences are microseconds since 1970 plus a count: about 2^51 today, exact
//	-- in Lua's numbers, and written with %d, never tostring ("1.7e+15").
//
//	-- stamp makes the fence of a grant to token and writes the record:
//	--
//	--   next fence = max(last fence + 1, the server's TIME in microseconds)
//	--
//	-- (and at least floor, when the caller gives one no more than two seconds
//	-- ahead of the server's clock: Redlock asks all its nodes for the same).
//	-- So a record that is stale or missing (a restore of an older snapshot, a
//	-- failover to a replica that missed writes, FLUSHALL, its own expiry)
//	-- never repeats or lowers a fence. The common case is one command: the
//	-- clock is ahead of the last fence, and SET ... GET writes the new record
//	-- and reads the old one together. A record of another type fails the
//	-- script with the lock deleted: no lock is left without a fence.
//	local function stamp(lock, record, token, owner, ttl, keep, floor)
//	  local t = redis.call('TIME')
//	  local now = t[1] * 1000000 + t[2]
//	  local f = now
//	  floor = tonumber(floor) or 0
//	  if floor > f and floor <= now + 2000000 then
//	    f = floor
//	  end
//	  local hold = ttl + keep
//	  local old = redis.pcall('SET', record, string.format('%d', f) .. ' ' .. token .. ' ' .. owner, 'PX', hold, 'GET')
//	  if old then
//	    if type(old) ~= 'string' then
//	      redis.call('DEL', lock)
//	      error(redis.error_reply('BADFENCE holds no string: ' .. tostring(old.err)))
//	    end
//	    local last = tonumber(string.match(old, '^(%d+) '))
//	    if last and last < 2^53 and last >= f then
//	      f = last + 1
//	      redis.call('SET', record, string.format('%d', f) .. ' ' .. token .. ' ' .. owner, 'PX', hold)
//	    end
//	  end
//	  return f
//	end
//
// lua/acquire.lua:
//
//	-- acquire: KEYS lock, record; ARGV token, ttl ms, owner, keep ms, floor.
//	-- {1, fence} when the lock is held for token; {0, pttl, holder's token,
//	-- record} when it is held by another (record false when there is none).
//	if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
//	  return {1, stamp(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2], ARGV[4], ARGV[5])}
//	end
//	--[[ prelude ]]
//	local v = redis.call('GET', KEYS[1])
//	if v ~= ARGV[1] then
//	  local r = redis.pcall('GET', KEYS[2])
//	  return {0, redis.call('PTTL', KEYS[1]), v, type(r) == 'string' and r}
//	end
//	return {1, own_fence(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2], ARGV[4], ARGV[5])}
//
// lua/release.lua:
//
//	-- release: KEYS lock, record, queue, waiters; ARGV token, channel, keep
//	-- ms. 0: not held by token; 1: deleted; 2: handed to the oldest live
//	-- waiter. The record stays: it keeps the last fence.
//	if redis.call('GET', KEYS[1]) ~= ARGV[1] then
//	  return 0
//	end
//	local queued = redis.pcall('LLEN', KEYS[3])
//	if type(queued) ~= 'number' or queued == 0 then
//	  redis.call('DEL', KEYS[1])
//	  return 1
//	end
//	--[[ prelude ]]
//	return pass_on(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3])
//
// lua/renew.lua:
//
//	-- renew: KEYS lock, record; ARGV token, ttl ms, keep ms. 1: extended; 0:
//	-- not held.
//	if redis.call('GET', KEYS[1]) ~= ARGV[1] then
//	  return 0
//	end
//	redis.call('PEXPIRE', KEYS[1], ARGV[2])
//	redis.call('PEXPIRE', KEYS[2], ARGV[2] + ARGV[3])
//	return 1
//
// lua/inspect.lua:
//
//	-- inspect: KEYS lock, record. {token, pttl, record}, record false when
//	-- there is none; {} when the lock is free.
//	local v = redis.call('GET', KEYS[1])
//	if not v then
//	  return {}
//	end
//	local r = redis.pcall('GET', KEYS[2])
//	return {v, redis.call('PTTL', KEYS[1]), type(r) == 'string' and r}
//
// lua/enqueue.lua:
//
//	-- enqueue: KEYS lock, record, queue, waiters; ARGV token, ttl ms, owner,
//	-- waiter lease ms, channel, keep ms.
//	-- Takes the lock if it is free or already handed to token ({1, fence});
//	-- otherwise adds token's waiter entry at the back of the queue, or
//	-- refreshes its expiry keeping its place, and returns {0, pttl}.
//	if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
//	  if redis.pcall('HDEL', KEYS[4], ARGV[1]) == 1 then
//	    redis.pcall('LREM', KEYS[3], 1, ARGV[1])
//	  end
//	  return {1, stamp(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2], ARGV[6], 0)}
//	end
//	--[[ prelude ]]
//	if redis.call('GET', KEYS[1]) == ARGV[1] then
//	  unqueue(KEYS[3], KEYS[4], ARGV[1])
//	  return {1, own_fence(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[2], ARGV[6], 0)}
//	end
//	local lease = tonumber(ARGV[4])
//	local e = string.format('%d', now_ms() + lease) .. '|' .. ARGV[2] .. '|' .. ARGV[5] .. '|' .. ARGV[3]
//	if redis.call('HSET', KEYS[4], ARGV[1], e) == 1 then
//	  redis.call('RPUSH', KEYS[3], ARGV[1])
//	end
//	if redis.call('PTTL', KEYS[4]) < lease then
//	  redis.call('PEXPIRE', KEYS[3], lease)
//	  redis.call('PEXPIRE', KEYS[4], lease)
//	end
//	return {0, redis.call('PTTL', KEYS[1])}
//
// lua/leave.lua:
//
//	-- leave: KEYS lock, record, queue, waiters; ARGV token, channel, keep ms.
//	-- Removes token's waiter entry; if the lock was already handed to token,
//	-- passes it on as release does. 0: nothing held; 1: deleted; 2: passed on.
//	--[[ prelude ]]
//	unqueue(KEYS[3], KEYS[4], ARGV[1])
//	if redis.call('GET', KEYS[1]) ~= ARGV[1] then
//	  return 0
//	end
//	return pass_on(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3])
//
// lua/prelude.lua:
//
//	-- The helpers of the scripts that grant a lock, for their slower paths:
//	-- each of those scripts is fence.lua, its own fast path, then this file
//	-- (where its --[[ prelude ]] line stands), then the rest of its own file.
//
//	-- now_ms is the server's clock in milliseconds.
//	local function now_ms()
//	  local t = redis.call('TIME')
//	  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
//	end
//
//	-- record_of reads a record: its fence, token and owner, or nil.
//	local function record_of(record)
//	  local r = redis.pcall('GET', record)
//	  if type(r) ~= 'string' then
//	    return nil
//	  end
//	  local f, token, owner = string.match(r, '^(%d+) (%S+) (.*)$')
//	  f = tonumber(f)
//	  if not f or f >= 2^53 then
//	    return nil
//	  end
//	  return f, token, owner
//	end
//
//	-- own_fence answers a request whose lock already holds its token (a retry,
//	-- or a waiter the lock was handed to): it extends the lock and its record
//	-- and returns the record's fence, or makes a new one when the record is not
//	-- token's.
//	local function own_fence(lock, record, token, owner, ttl, keep, floor)
//	  redis.call('PEXPIRE', lock, ttl)
//	  local f, holder = record_of(record)
//	  if holder == token then
//	    redis.call('PEXPIRE', record, ttl + keep)
//	    return f
//	  end
//	  return stamp(lock, record, token, owner, ttl, keep, floor)
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
//	local function pass_on(lock, record, queue, waiters, channel, keep)
//	  local now
//	  while true do
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
//	        redis.call('SET', lock, w, 'PX', ttl)
//	        local ok, f = pcall(stamp, lock, record, w, owner, ttl, keep, 0)
//	        if not ok then
//	          return 1 -- stamp deleted the lock
//	        end
//	        if ch == '' then
//	          ch = channel
//	        end
//	        redis.call('PUBLISH', ch, string.format('%d', f) .. ' ' .. w)
//	        return 2
//	      end
//	    end
//	  end
//	  redis.call('DEL', lock)
//	  return 1
//	end
package rediswire
