// Package redlock keeps distlock locks on a majority of N independent Redis
// servers (the Redlock algorithm): a lock survives the loss of any minority
// of them, where a lock on one Redis server (package redislock) is lost, or
// held twice, when that one server fails.
//
//	client, err := distlock.Open(ctx, "redlock://10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379")
//
// with the package imported, or redlock.Open with the same URL. New takes
// the caller's own go-redis clients, one per server.
//
// Redlock is rarely the right choice (seed point R4): read "What is not
// guaranteed" and "When to choose etcd" below first.
//
// # The algorithm
//
// The nodes are N (odd, at least 3) Redis masters that know nothing of one
// another: not replicas of one another, not nodes of one Cluster. A
// majority is Q = N/2+1.
//
//   - Acquire sends the single-instance acquire (internal/rediswire, the
//     same script and keys as redis://) to every node at once, each bounded
//     by the per-node limit (Options.NodeTimeout, default max(TTL/50, 5ms)).
//     The lock is held if at least Q nodes granted it and the validity,
//     TTL - elapsed - drift with drift = TTL/100 + 2ms, is still positive.
//     Otherwise the key is released on every node that granted it or did
//     not answer (its write may have landed), and the attempt fails.
//   - The fence is the largest of the fences the granting nodes returned.
//     Each node makes its fences on its own, by the single-instance rule
//     max(last + 1, its clock in microseconds), and, asked by the acquire,
//     never below a floor: our clock in microseconds plus one second, the
//     same for every node. So nodes whose records agree, or have none,
//     make the same fence. A node ignores a floor more than two seconds
//     ahead of its own clock (rediswire.MaxFloorLead), so a client whose
//     clock runs ahead cannot carry fences past the nodes' clocks, below
//     which an expired record would later restart. When fewer than Q
//     granting nodes stand at the fence (a node missed a grant, its clock
//     is more than a second ahead of ours, or ours is ahead of it), a
//     second round trip raises the fence of the others' records to it
//     before the lock is handed out.
//   - Release runs the single-instance compare-and-delete on every node.
//     It succeeds if any node held the token, and is ErrNotHeld when at
//     least Q nodes said the token does not hold the key and none released
//     it.
//   - Renewal sends every lock a Client renews in one pipeline per node,
//     the nodes in parallel: one round trip per node per batch. A lock is
//     renewed when at least Q nodes extended it within its validity; it is
//     lost (ErrNotHeld) when so many nodes said it is not held there that Q
//     cannot be reached; otherwise its outcome is unknown and the Client
//     retries while the TTL allows. A node that lost the key is not given
//     it back by a renewal.
//   - Inspect (Status, and the read-back after an acquire whose answer was
//     lost) reads every node and reports the token that holds at least Q of
//     them, with the Q-th largest fence among them (the largest that a
//     majority stands at or above: the holder's, even when a node whose
//     grant arrived after the attempt gave up on it reports a larger one of
//     its own) and as TTL the time until fewer than Q hold it. The key is free when no token could reach Q
//     even with every silent node's vote; if one still could, Inspect fails
//     rather than guess.
//
// TTLs are kept in whole milliseconds (rounded up); the smallest is 100ms.
// With the Client's default TTL of 15s the per-node limit is 300ms.
//
// The driver makes single attempts. Lock's waiting (back-off with jitter,
// never sleeping past the holder's remaining TTL, which a contended acquire
// reports) is the portable layer's: there is no server wake-up, because a
// release on a majority cannot be published atomically.
//
// # Outcomes of a failed acquire
//
//   - Contention: some nodes hold the key for another token. The error is a
//     *driver.HeldError (errors.Is ErrLocked) with the holder's owner and
//     fence as the nodes record them, and the shortest remaining TTL among
//     them, so a waiter's timer fires when the first node frees.
//   - No majority in time (nodes too slow for the per-node limit, a
//     majority that arrived after the validity ran out, or a fence that did
//     not reach Q nodes): the key was released and nobody is known to hold
//     it. The error wraps driver.ErrRetry: Lock keeps waiting and tries
//     again; TryLock reports the store as unavailable (ErrUnavailable, exit
//     69 from the CLI), not as locked.
//   - Refused connections alone rule out a majority (more than N-Q nodes
//     down): the error wraps ErrUnavailable, and Lock returns at once.
//   - If Q or more nodes may still hold the key (they answered neither the
//     acquire nor the release), the error also wraps driver.ErrRetry, and
//     the key may stay taken until its TTL. It is not left to the Client's read-back
//     by token: that could grant the lock with a fence that was never
//     spread to a majority.
//
// The Lease a grant returns carries the full TTL. The Client's local
// deadline is the time the request was sent plus the TTL less the same
// 1% + 2ms: exactly the Redlock validity, counted from before the first
// node could have set the key.
//
// # Guarantees
//
// Given that no node loses data it acknowledged (no restart without
// persistence, no failover to a replica that missed the write, no FLUSHALL
// or eviction by maxmemory) and that every node's clock, and ours, runs at
// a rate within 1% of true time and is not stepped:
//
//   - At most one token holds a key on a majority within its validity, so
//     at most one Lock of a key is held at any moment by the holders'
//     deadlines.
//   - Fences of a key increase strictly with every acquisition: after a
//     lock is granted with fence F, at least Q nodes have records at F or
//     above; any later majority includes one of them, whose next fence is
//     above F, and the new fence is the largest of its majority's. Those
//     records expire an hour after the lock's TTL (rediswire.FenceKeep);
//     by then the clocks a next fence never falls below (the node's, and
//     the acquiring client's plus a second) are past F, as long as the
//     nodes' clocks agree to within half an hour (a client's floor counts
//     only within two seconds of a node's clock).
//   - Up to N-Q nodes may be down, paused or partitioned away: every
//     operation goes on with the others, each request costing at most the
//     per-node limit on a silent node.
//   - Keys, tokens and owners reach Redis as script arguments, never
//     spliced into a script. Lock names that begin with "distlock:{"
//     (distlock's own keys, see internal/rediswire) are refused with
//     ErrInvalid, and so is a prefix that begins with it. A node whose
//     record of the key is not a string refuses the key, having taken
//     nothing; when so many refuse that no majority can grant, the acquire
//     fails with ErrInvalid naming them.
//
// # What is not guaranteed
//
//   - A node that restarts without persistence forgets the keys it held.
//     If the holder's majority depended on it, another client can now
//     gather a majority with the restarted node: two holders at once.
//     Fencing holds as long as the clients' and the nodes' clocks agree to
//     within the time the restart took: a node without a record makes its
//     fence from its clock and the acquiring client's. To keep
//     exclusion across restarts, run every node with appendonly yes and
//     appendfsync always, or keep a restarted node out for longer than the
//     longest TTL in use (a delayed restart). Replication does not help:
//     Redis replicates asynchronously, and a promoted replica may lack the
//     latest keys and records.
//   - Safety rests on timing: a process paused (GC, swap, a stopped VM) past
//     its deadline still believes it holds the lock until it checks. The
//     Client cancels the Lock's context at the deadline, and the fence lets
//     a resource that checks it reject the stale holder, but only as long
//     as the conditions above hold.
//   - A clock that jumps on a node (an operator, an NTP step) expires keys
//     early on it, with the same effect as a lost key.
//   - A failed acquire may leave the key on a minority of nodes until its
//     TTL (the release of a node that did not answer cannot be confirmed);
//     that blocks those nodes' votes for that time, never a majority.
//   - An acquire that a majority of nodes answered neither for the acquire
//     nor for the release may leave the key taken for our token on them
//     until its TTL: nobody, us included, holds the lock meanwhile.
//
// # When to choose etcd
//
// Choose etcd (package etcdlock) when a second holder would corrupt data
// rather than waste work, when you must rely on fences absolutely, or when
// your Redis servers may restart without persistence or fail over: etcd
// decides by a Raft majority that writes to disk before it answers, and its
// revisions are fences that never repeat. Redlock fits locks that only
// avoid duplicate work (where a rare double holder costs effort, not
// correctness) and that must outlive any single Redis server, in a shop
// that runs several independent Redis servers anyway. With one server, or
// a Sentinel/Cluster setup, use package redislock: it is faster, has
// server-woken waiters, and is as safe as its one server.
//
// # URLs
//
//	redlock://[user:password@]host1:port1,host2:port2,host3:port3[/db][?params]
//
// At least three nodes, an odd number. Every node gets the same
// credentials, database number and options. A node without a port uses
// 6379, but Go's URL parser needs a port on the last node if any node has
// one; IPv6 literals are not accepted among several hosts (use host names,
// or New with your own clients). The same node twice is an error that names
// it: hosts are compared case-insensitively without a trailing dot, IP
// addresses in canonical form, localhost as 127.0.0.1, ports as numbers;
// names are not resolved, but when the driver is opened every node is asked
// its run_id (INFO server), so two names for one server are refused too.
//
// Query parameters read by this package:
//
//	prefix=STRING         put before every key (default none), as redis:// does
//	tls=BOOL              connect with TLS (default false)
//	node_timeout=DURATION the per-node limit of acquire and renewal
//	                      (default max(TTL/50, 5ms))
//
// Every other parameter is go-redis's, as redis.ParseURL reads it for each
// node (dial_timeout, read_timeout, write_timeout, pool_size, protocol,
// client_name, max_retries, skip_verify with tls=true, ...); an unknown one
// is an error. Credentials go in the URL's user information only (a
// password or user parameter is refused), so distlock redacts them from
// errors. Unless the URL says otherwise, each node's client is made with
// max_retries=-1 (one attempt: the Client retries, and a retry would not fit
// in the per-node limit). Always, it makes one dial attempt per request and
// has ContextTimeoutEnabled, so the per-node limit and the caller's ctx
// bound the socket reads (context_timeout_enabled=true is accepted, false
// refused).
//
// Opening asks every node for its run_id (one INFO per node). It fails with
// ErrUnavailable if fewer than a majority answer, and with ErrInvalid if a
// node answers with an error (a wrong password or database number) or two
// nodes are one server.
//
// # Your own clients
//
// New and NewDriver take one redis.UniversalClient per node, which the
// caller owns (Client.Close does not close them). The same client twice, or
// two *redis.Client with the same address, is refused, and so are two
// clients that reach the same server (by run_id). Set ContextTimeoutEnabled:
// true on them: otherwise a node that stops answering holds a goroutine
// until the client's own ReadTimeout, and Client.Close waits for it (at
// most 10s), though no call waits past the per-node limit or its ctx.
// MaxRetries: -1 and DialerRetries: 1 are advised for the reasons given
// above.
//
// # Wire protocol
//
// On each node, exactly the keys and scripts of the single-instance driver
// (package redislock, internal/rediswire): the lock is the string key
// prefix+key holding the token, with a PX expiry; its record (the last
// fence, and the holder's token and owner) sits under the same Cluster hash
// tag. Another program can take part by running the same scripts on every
// node and following the algorithm above; the acquire passes the floor
// (ARGV[5] of acquire.lua, our clock in microseconds plus 1000000) to every
// node. This package adds one script, fence.lua, run only to spread a fence
// (KEYS: the record; ARGV: token, fence, the record's expiry in ms (the
// lock's TTL plus rediswire.FenceKeep), owner; numbers as decimal text):
//
//	-- Spread a lock's fence to a node: raise the fence of the lock name's
//	-- record (KEYS: the record, rediswire.Names.Record) to at least ARGV[2],
//	-- keeping its expiry; a record that is missing or unreadable is written
//	-- for the token ARGV[1] and owner ARGV[4], with the expiry ARGV[3] (ms)
//	-- that a grant gives it. Fences are below 2^53, exact in Lua numbers, and
//	-- written as the decimal text the caller sent. 1: the record is the
//	-- token's; 0: another's.
//	local want = tonumber(ARGV[2])
//	local r = redis.pcall('GET', KEYS[1])
//	local f, token, owner
//	if type(r) == 'string' then
//	  f, token, owner = string.match(r, '^(%d+) (%S+) (.*)$')
//	end
//	if not f or tonumber(f) >= 2^53 then
//	  redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[1] .. ' ' .. ARGV[4], 'PX', ARGV[3])
//	  return 1
//	end
//	if tonumber(f) < want then
//	  redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. token .. ' ' .. owner, 'KEEPTTL')
//	end
//	if token == ARGV[1] then
//	  return 1
//	end
//	return 0
//
// KEEPTTL needs Redis 6.0 or later, SET with GET (in the acquire) 6.2.
//
// # Round trips
//
// Per node, all nodes in parallel, so the time of each is that of the
// slowest node that answers (at most the per-node limit):
//
//	TryLock             1 (2 when the nodes' fences disagree: after a
//	                    node missed a grant, or when a node's clock is
//	                    more than a second ahead of ours); a failed
//	                    attempt adds 1 release on each node that granted
//	                    or did not answer
//	Lock                as TryLock, per attempt
//	Unlock              1
//	renewal             1 pipeline per batch, whatever the number of locks
//	Status              1
//	Open, New           1 (INFO server)
//
// The first use of each script on a server costs one more (NOSCRIPT, then
// the script is sent in full).
package redlock
