// Package redislock keeps distlock locks on a single Redis deployment (one
// server, a Sentinel-managed primary, or a Cluster), through go-redis v9.
//
//	client, err := redislock.Open(ctx, "redis://localhost:6379/0")
//
// or, with the package imported, distlock.Open(ctx, "redis://...").
// New takes a redis.UniversalClient the caller already has.
//
// # Wire scheme
//
// The lock on key k is the Redis string key Prefix+k, its value the holder's
// token, set with a PX expiry: the layout redsync and bsm/redislock use, so a
// lock taken by either blocks ours and ours blocks theirs. The record (the
// last fence, and the holder's token and owner) and the waiter queue live in keys
// named distlock:{T}:<kind>:<lock key>, where the hash tag T puts them in the
// lock key's Redis Cluster slot whatever braces the key contains. Each
// operation is one Lua script (EVALSHA, EVAL after NOSCRIPT); the exact
// layout is documented in internal/rediswire and in the README, so any
// language can interoperate.
//
// # Guarantees
//
//   - Acquire sets the key only if it is absent (or already holds our token:
//     a retried request gets the same lease back); release deletes it and
//     renewal extends it only if it still holds our token. Expiry is the
//     server's.
//   - Fences are strictly increasing per key: every grant makes the next
//     fence max(last + 1, the server's TIME in microseconds), so a record
//     that is stale or lost with the server's data (a restart without
//     persistence, a restore of an older snapshot, a failover to a replica
//     that missed writes, FLUSHALL) never repeats or lowers a fence. The
//     one assumption: the server's clock does not step back. The record
//     expires an hour after the lock's TTL (rediswire.FenceKeep), so a key
//     nobody locks any more leaves nothing behind. A record of another
//     type (written by another program) makes the key's acquisitions fail
//     with an error wrapping distlock.ErrInvalid that names it, with
//     nothing held.
//   - Lock names (prefix+key) that begin with "distlock:{", distlock's own
//     key space, are refused with distlock.ErrInvalid, and so is a prefix
//     that begins with it.
//   - Waiters queue on the server, oldest first. A release hands the lock
//     directly to the oldest live waiter and publishes one message to the
//     process that waits, so one release wakes one waiter, and a waiter
//     needs no extra request to take the lock. Each driver has one pub/sub
//     connection, shared by all its waiting Lock calls. A waiter that gives
//     up leaves the queue (passing the lock on if it was just handed to it);
//     a waiter that dies drops out after its queue entry expires (the lock's
//     TTL, at least 1s, at most 30s).
//   - Renewal of every lock a Client holds is one pipeline: one round trip.
//
// Not guaranteed: Redis replication is asynchronous. If the primary fails
// before a lock reached a replica, the promoted replica does not have it and
// a second holder can take the key; the fence rule still orders the two
// for a resource that checks fences. Use etcd when exclusion
// must survive a failover, or Redlock across independent servers.
//
// # Round trips
//
// TryLock: 1. Lock on a free key: 1. Lock on a held key: 1 to queue (plus
// one SUBSCRIBE per driver, once), then nothing until the hand-over message,
// plus one re-check at the holder's remaining TTL or every third of the
// queue entry's lifetime. Unlock: 1. Renewal: 1 per interval for all locks.
// Status: 1. On the server, an uncontended TryLock and Unlock run eight
// commands (five in the acquire script, three in the release script)
// besides their two EVALSHA.
//
// # Deadlines
//
// Every call returns by its ctx's deadline. Clients made by Open and
// OpenDriver have go-redis's ContextTimeoutEnabled set, so a ctx deadline
// bounds the socket reads, not go-redis's read_timeout (3s by default). A
// client passed to New without ContextTimeoutEnabled (go-redis then waits
// for its own ReadTimeout, whatever the ctx) gets the same bound another
// way: each call runs in a goroutine, and when ctx ends first the call
// returns an error of unknown outcome (the Client reads back by token)
// while the request runs on until the client's own timeout; Close waits
// for such requests, at most 10s. That costs a goroutine per call, which
// a client with ContextTimeoutEnabled does not pay. A waiter whose ctx
// ends leaves the queue before it returns, waiting at most 100ms for the
// server, and in the background after that.
//
// # URLs
//
//	redis://[[user]:password@]host[:port][/db][?option=value&...]
//	rediss://...   (TLS)
//
// Every option go-redis's ParseURL accepts (dial_timeout, read_timeout,
// pool_size, max_retries, protocol, client_name, skip_verify, ...) plus:
//
//	prefix=STRING                 put in front of every key (default: none)
//	context_timeout_enabled=true  accepted and always in force; false is refused
//
// Errors never show the password; they wrap distlock.ErrInvalid for a
// malformed URL and driver.ErrUnavailable when the server cannot be reached
// (Open sends one PING).
//
// # Your own client
//
// New and NewDriver use a redis.UniversalClient the caller made (a plain
// client, a failover client, a cluster client) and never close it. The
// waiters' subscription uses client.Subscribe. Give it
// ContextTimeoutEnabled: true (see Deadlines): whether it has it is read
// from a *redis.Client, *redis.ClusterClient or *redis.Ring; any other
// implementation is taken not to honour ctx deadlines.
package redislock
