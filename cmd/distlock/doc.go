// Command distlock runs a command while it holds a distributed lock: flock(1)
// for cron jobs and deploy steps that run on several machines.
//
//	distlock run --wait 0 nightly-report -- ./report.sh --full
//
// # Usage
//
//	distlock run [--store URL] [--ttl D] [--wait D] [--grace D] [--owner S] KEY -- CMD [ARGS...]
//	distlock status [--store URL] [--json] KEY
//	distlock help [run|status]
//	distlock version
//
// Flags come before KEY; "--" ends distlock's arguments and CMD follows it.
// A KEY cannot start with "-".
//
// run waits for the lock: forever by default, like flock; --wait 0 tries
// once; --wait 30s gives up after 30 seconds. When stderr is a terminal it
// says once what it waits for and who holds the lock (owner, fence, time
// left). It then runs CMD with its arguments exactly as given, without a
// shell, renewing the lock every TTL/3 (--ttl, default 15s) while CMD runs.
// When CMD exits the lock is released and distlock exits with CMD's status.
//
// SIGINT, SIGTERM and SIGHUP received while CMD runs are passed on to CMD,
// and distlock keeps waiting for CMD to exit. Received while distlock still
// waits for the lock, they end the wait, with status 128+N (130 for SIGINT).
// Signals distlock was started with ignored (nohup) stay ignored, for CMD
// too.
//
// If the lock is lost while CMD runs (the store expired or reassigned it:
// distlock was paused, or could not reach the store for a whole TTL),
// distlock says so on stderr, naming the key and the cause, sends CMD
// SIGTERM, then SIGKILL after --grace (default 10s), and exits 76.
//
// status prints whether KEY is held and, if so, the holder's owner
// metadata, its fence and the time left by the store's clock. It exits 0
// whether the key is held or free. With --json it prints one object:
//
//	{"key":"k","held":true,"owner":"web1:4242","fence":7,"ttl_ms":12500}
//
// where owner, fence and ttl_ms are absent when the key is free.
//
// # Exit codes
//
//	0       CMD exited 0; status answered (held or free)
//	64      usage: bad flags, missing --, missing CMD, bad KEY or TTL,
//	        malformed or unknown store URL
//	69      the store cannot be reached, or another store error
//	75      the lock was not acquired within --wait (the message names the
//	        holder when the store says)
//	76      the lock was lost while CMD ran (CMD was stopped), or the store
//	        said it was no longer held when CMD ended
//	126     CMD was found but cannot be executed
//	127     CMD was not found
//	128+N   CMD died by signal N (143 for SIGTERM); or signal N ended the
//	        wait for the lock (130 for SIGINT)
//	other   CMD's own exit status
//
// 64, 69 and 75 are BSD sysexits (EX_USAGE, EX_UNAVAILABLE, EX_TEMPFAIL);
// 126, 127 and 128+N are the shell's. Any other failure to release the
// lock after CMD exits is a warning on stderr: distlock still exits with
// CMD's status, and the lock expires by its TTL.
//
// # Environment variables
//
//	DISTLOCK_STORE  the store URL when --store is not given
//	DISTLOCK_KEY    set for CMD: the lock's key
//	DISTLOCK_FENCE  set for CMD: the lock's fencing token
//	XDG_STATE_HOME, HOME, LocalAppData: where the default store lives
//
// The fencing token grows with every acquisition of a key. A CMD that writes
// to a shared resource should pass it along and have the resource refuse a
// fence lower than one it has already seen: that makes a holder that lost
// its lock while paused harmless.
//
// # Default store path
//
// The store is --store, else $DISTLOCK_STORE, else the SQLite file locks.db
// in the user's state directory:
//
//	Linux, macOS, other Unix  $XDG_STATE_HOME/distlock/locks.db if XDG_STATE_HOME
//	                          is an absolute path, else ~/.local/state/distlock/locks.db
//	Windows                   %LocalAppData%\distlock\locks.db
//
// The directory is created on first use. SQLite store URLs are
// sqlite:///abs/path.db or sqlite:rel/path.db. A SQLite store coordinates the
// processes of one machine; to coordinate machines, use a server store.
// "distlock help" prints the default store of the machine it runs on and the
// schemes compiled in.
//
// # Platform notes
//
// On Linux, CMD is started with a parent-death signal (SIGKILL): if distlock
// dies, even by kill -9, the kernel kills CMD, so CMD never runs on without
// its lock being renewed. On other platforms there is no such signal: CMD is
// still stopped when the lock is lost while distlock runs, but if distlock
// itself is killed (kill -9, a crash), CMD runs on until it ends while the
// lock expires after its TTL.
//
// Signals go to CMD's process, not to the processes CMD starts: a shell
// script given as CMD should exec its last command or pass signals on. In a
// terminal, Ctrl-C reaches CMD directly as well as through distlock, so CMD
// may see SIGINT twice. On Windows CMD cannot be sent SIGTERM: a lost lock
// kills it at once.
package main
