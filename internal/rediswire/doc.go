// Package rediswire is the wire scheme distlock uses on a Redis server: the
// key names, the Lua scripts and the calls that run them. The single-instance
// driver (redislock) and Redlock (each node) share it, so a lock is laid out
// the same way on every server and any language can interoperate.
//
// # Keys
//
// For a lock name L (the user's prefix followed by the key):
//
//	L                        string: the holder's token, with a PX expiry
//	distlock:{T}:f:L         string: the fence counter (an integer), no expiry
//	distlock:{T}:m:L         string: JSON {"token":..., "owner":..., "fence":"<decimal>"},
//	                         the holder's metadata, with the same expiry as L
//	distlock:{T}:q:L         list: tokens of queued waiters, oldest first
//	distlock:{T}:w:L         hash: waiter token -> "<expiry ms>|<ttl ms>|<channel>|<owner>"
//	distlock:{T}:c:L         default pub/sub channel of a hand-over (empty <channel>)
//
// T is the decimal text of the smallest non-negative integer whose Redis
// Cluster hash slot equals the slot of L (CRC16/XMODEM of L's hash tag, or of
// L, modulo 16384). The first '{' of every auxiliary name opens {T}, so it
// hashes by T whatever braces L contains, and every key of a lock lives in
// one slot: scripts that touch them all work on a cluster. The lock key itself
// is exactly L, and its value exactly the token, which is what redsync and
// bsm/redislock write: their locks and ours exclude each other.
//
// # Operations (one round trip each)
//
//   - Acquire: if L is missing, SET L token PX ttl, INCR the counter (if the
//     INCR returns 1 the counter was missing: SET it to the server's TIME in
//     microseconds and INCR again), and SET the metadata with PX ttl. If L
//     already holds token, extend L and the metadata by ttl and return the
//     fence in the metadata. Otherwise answer PTTL L and the metadata.
//   - Release: only if GET L equals the token: pop waiters from the queue
//     until one whose entry has not expired (by the server's TIME); if found,
//     grant it the lock as Acquire would (new fence, its TTL and owner) and
//     PUBLISH "<fence> <token>" on the channel its entry names; if not, DEL L
//     and the metadata.
//   - Renew: only if GET L equals the token, PEXPIRE L and the metadata.
//   - Inspect: GET L, PTTL L and the metadata, atomically.
//   - Enqueue (a blocking waiter): take L if it is missing or already granted
//     to the token; otherwise put the token at the back of the queue (or
//     refresh its entry's expiry, keeping its place), naming the channel the
//     waiter listens on. The single-instance driver gives each process one
//     channel of its own (distlock:notify:<random>), so a hand-over reaches
//     only the process that waits, and each process needs one subscription
//     whatever the number of keys.
//   - Leave (a waiter that gives up): remove its entry; if L was granted to
//     it meanwhile, pass L on as Release does.
//
// Fences never go backwards as long as the server's clock does not step back:
// a counter lost with the server's data is reseeded above every fence issued
// before (fewer than one acquisition per microsecond ever happens per key).
package rediswire
