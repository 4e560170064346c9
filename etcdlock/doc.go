// Package etcdlock keeps distlock locks in etcd (v3 API, through
// go.etcd.io/etcd/client/v3): the strongly consistent store, replicated by
// Raft, for locks that must stay correct through member failures.
//
//	client, err := distlock.Open(ctx, "etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379")
//
// with the package imported, or New with a *clientv3.Client the caller
// already has (the Client never closes it).
//
// Its locks are etcd's own: a lock taken here and one taken by etcd's
// concurrency.Mutex or `etcdctl lock` on the same name exclude each other in
// both directions, and the fence is the create revision etcd gave the
// holder's key.
//
// # URLs
//
//	etcd://[user:password@]host1:2379[,host2:2379...][/][?param=value&...]
//
// A host without a port gets 2379. IPv6 literals work only as the single
// host (Go's URL parser refuses "[::1]:2379,..."); pass Config.Endpoints to
// Open for more. Query parameters:
//
//	prefix=STRING              put in front of every lock name (default none)
//	tls=true|false             connect with TLS (implied by ca, cert, key)
//	ca=FILE                    PEM file of the CAs to trust (default: the system's)
//	cert=FILE&key=FILE         client certificate and key, PEM
//	insecure_skip_verify=true  do not verify the server's certificate (tests only)
//	dial_timeout=DURATION      how long Open may take to reach a member (default 5s)
//
// User and password in the URL log in with etcd's authentication; the
// password never appears in errors. An unknown or repeated parameter, a
// malformed value or a cert without a key is an error wrapping
// distlock.ErrInvalid. Open checks that some member answers (a Status call).
//
// # Wire protocol
//
// A lock named K (after the prefix) is a queue of keys directly under
// "K/", one per contender, each bound to the contender's lease. The holder is
// the key with the lowest create revision among the direct children of
// "K/" (keys with a further "/", the queues of deeper locks such as "K/sub",
// do not count: etcd's own Mutex wrongly counts them); the fence is that
// key's create revision, made by etcd and strictly increasing.
//
// A contender's key is "K/" followed by its lease ID in lower-case hex, as
// concurrency.Mutex writes it (fmt "%x" of the int64 ID). Its value here is
// the JSON object {"token":"<random token>","owner":"<owner>"}; a Mutex or
// etcdctl writes an empty value, and such a holder is shown with owner
// "etcd lease <hex id>" and no token.
//
// TryLock, when the queue is empty, is one Txn:
//
//	If   create_revision(prefix "K/") = 0      (no key at all under K/)
//	Then put "K/<lease>" = value, lease <lease>
//	Else range "K/" prefix, sort by create_revision ascending, limit 8
//
// Else is the contention answer (the holder read at no extra cost; nothing
// written). If the only keys under "K/" belong to deeper locks, TryLock
// writes its key as below, and deletes it again if it is not first.
//
// Lock joins the queue:
//
//	If   create_revision("K/<lease>") = 0
//	Then put "K/<lease>" = value, lease <lease>;  range "K/" oldest first, limit 8
//	Else get "K/<lease>";                        range "K/" oldest first, limit 8
//
// and if its key is not first it finds its predecessor (range "K/" with
// max_create_revision = own − 1, newest first, the first direct child),
// watches that one key for its deletion, and when it goes reads its place
// again (own key, oldest, predecessor: one Txn). The watch starts at the
// server's current revision; if that is past the revision at which the
// predecessor was read, the place is read again once the watch exists, so
// no deletion can fall between the read and the watch, and the watch is
// never one of the "unsynced" watchers etcd catches up only every 100ms.
//
// Unlock deletes "K/<lease>", as concurrency.Mutex does. Only the lease's
// holder writes that name, so it is safe if the holder never writes the
// name anew while a delete of the old key may still land. This driver
// ensures it: while a Release is in flight, the key is not taken for gone;
// a Release whose delete fails retires the lease (below), so the name is
// never written on that lease again; and a Release of a lock the driver no
// longer holds (late, repeated, or of another process's token) is a
// guarded delete:
//
//	If create_revision("K/<lease>") = <fence>  Then delete "K/<lease>"
//
// Any program that follows these rules with a lease of its own interoperates.
//
// # Writes with an unknown outcome
//
// A put or a plain delete whose answer never came (the connection broke,
// the leader changed, the call's ctx ended) may still land later, at any
// time, even after a retry was answered. Every such write retires the
// lease it was bound to: new requests go on a fresh lease (one Grant, at
// the next request), while the retired lease is kept alive only as long as
// requests that were using it still hold or wait for locks on it, and is
// revoked (retried until the server answers) once none does. A late plain
// delete of "K/<old lease>" then never hits a newer key, as no key of that
// name is written again; a late put bound to a revoked lease is refused by
// etcd, and one that landed before goes with the lease. While the retired
// lease lives, its keys are read every third of its TTL (lease
// time-to-live with keys), and each key that belongs to none of its
// requests, which no request of the driver writes again, is deleted:
//
//	If lease("K/<old lease>") = <old lease>  Then delete "K/<old lease>"
//
// So a late landing is gone within a third of the TTL, or refused. Besides,
// the key of a failed Release, and of an acquire given up on, is deleted in
// the background (guarded by its create revision, or by its value when the
// revision is unknown) until that succeeds, the lease is lost or the
// driver closes.
//
// # Leases and TTLs
//
// A Client has one lease in force, granted when it takes its first lock,
// renewed every third of its TTL on a keep-alive stream the driver keeps
// open, and shared by all its new locks and waiters; after a fault a lease
// may be retired and a new one granted (above). Close revokes every lease
// of the Client. Its TTL is the first lock's TTL rounded up to whole
// seconds (so set it with distlock.WithTTL at Open). A lock asking for a
// different TTL is refused with ErrInvalid naming both TTLs: open another
// Client for another TTL. The smallest TTL is 2s (MinTTL, etcd's minimum
// with its default timing); a server with a longer election timeout grants
// more, and the lock reports the TTL granted.
//
// Each lock is renewed by renewing its lease (one keep-alive message on a
// keep-alive stream the driver keeps open per lease; the TTL then counts
// from now on the server's clock) while one Txn checks every held key
// still exists with its fence; locks on two leases cost one keep-alive
// more, sent together. A TryLock grant reports the send time of
// the lease's last successful renewal as driver.Lease.Since, and the
// portable layer counts the lock's deadline from it, so the deadline never
// outlasts the server's lease. When the lease is lost (expired, revoked, or
// no renewal sent within the last TTL succeeded, after which the server may
// have expired it), the driver stops renewing it and revokes it, retrying
// until the server answers, so its keys never outlive the loss; every lock
// on it is lost (its
// Done closes, Err wraps distlock.ErrLost), a waiter on it returns at once
// with an error wrapping distlock.ErrLost, and the next lock takes a new
// lease. A lock the portable layer stops renewing (WithAutoRenew(false)) is
// released by the Client at its deadline; if the process dies, its keys go
// when its lease expires.
//
// Since one lease has one key per name, a Client uses a name for one
// request at a time: its own TryLock on a name it holds sees contention, and
// its Locks on one name queue in the Client, in arrival order, before
// joining etcd's queue.
//
// # Guarantees
//
//   - Exclusion is decided by etcd alone (linearizable Txns and revisions),
//     also against concurrency.Mutex and etcdctl lock holders.
//   - Fences are create revisions: strictly increasing per name, and
//     across names, for the life of the cluster. A cluster restored from a
//     snapshot starts again at the snapshot's revision, below fences already
//     handed out: restore with `etcdutl snapshot restore --bump-revision N
//     --mark-compacted`, N above the number of writes since the snapshot was
//     taken (etcd's guide: 1,000,000,000 covers a week at under 1,500 writes
//     a second), so revisions never go back and watches on the old ones end.
//     A restore also brings back keys of locks released since the snapshot,
//     bound to leases their Clients may still keep alive: restart those
//     Clients (or revoke every lease, `etcdctl lease list` then `etcdctl
//     lease revoke`) once the cluster is back (their locks end as lost).
//   - Waiters are served oldest first (create revision order), one woken
//     per release.
//   - A Txn whose answer is lost is sent again: our key's name and value are
//     ours alone, so the retry learns what the first did, and a key of ours
//     it finds at the head of the queue is the lock, with that key's create
//     revision as the fence. If the store does not answer within the lock's
//     TTL (TryLock) or before ctx ends, the call answers with an error
//     wrapping ErrUnavailable, and nothing is left held: what it may have
//     written is removed (below).
//   - A Lock that ends without the lock removes its waiting key: at once
//     while its ctx lasts, or, when the ctx has ended, by a delete sent in
//     the background as the call returns (every call returns by its ctx's
//     deadline).
//   - No key stays bound to a live lease of the Client once its lock is
//     gone: a failed Unlock, an acquire given up on and a late landing are
//     all removed, or their lease revoked (see "Writes with an unknown
//     outcome"), within about one TTL of the store answering again, not at
//     Close. Unlock's error then wraps ErrUnavailable.
//
// Not guaranteed: a Mutex or etcdctl holder's owner and token are unknown;
// keys under the prefix written by other tools count as contenders; Status
// shows the holder lease's time to live, in whole seconds, not the lock's.
//
// # Round trips
//
//	TryLock, free        1 Txn; +1 Grant at first use
//	TryLock, contended   1 Txn (nothing written)
//	Lock, free           1 Txn (counted from the lease's last renewal)
//	Lock, waiting        1 Txn + 1 Txn (predecessor) + the watch, + 1 Txn per wake-up
//	                     (+ keep-alive beside the last)
//	Unlock               1 delete
//	renewal              1 keep-alive (per lease) + 1 Txn (per 100 locks), sent together
//	Status               1 range + 1 lease time-to-live
//	Close                1 Revoke (per lease, sent together)
//	after a fault        +1 Grant at the next request; while a retired lease
//	                     lives, 1 lease time-to-live per third of the TTL
//	                     (+1 Txn per key swept); 1 Revoke when its last lock goes
package etcdlock
