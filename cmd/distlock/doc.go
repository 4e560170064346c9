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
// shell, in a process group of its own, renewing the lock every TTL/3
// (--ttl, default 15s) while CMD runs. When CMD exits the lock is released
// and distlock exits with CMD's status.
//
// SIGINT, SIGTERM and SIGHUP received while CMD runs are passed on to CMD's
// process group, once each, and distlock keeps waiting for CMD to exit.
// Received while distlock still waits for the lock, they end the wait, with
// status 128+N (130 for SIGINT). Signals distlock was started with ignored
// (nohup) stay ignored, for CMD too.
//
// If the lock is lost while CMD runs (the store expired or reassigned it:
// distlock was paused, or could not reach the store for a whole TTL),
// distlock says so on stderr, naming the key and the cause, sends CMD's
// process group SIGTERM, then SIGKILL after --grace (default 10s), and
// exits 76 once the group is empty.
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
// # CMD's process tree
//
// Whatever distlock does to CMD it does to CMD's process group: CMD and
// what it starts, a script's pg_dump | gzip as well as the sleep of
// sh -c 'sleep 300 & wait'. A supervisor runs the group: distlock itself,
// re-executed as CMD's parent (ps shows it as distlock-supervisor).
//
//   - Signals passed on, and the SIGTERM and SIGKILL of a loss, reach the
//     whole group.
//   - When CMD exits, what is left of its group (a background grandchild)
//     gets SIGTERM, then SIGKILL after --grace, and the lock is released
//     only once the group is empty: no process of CMD's group runs after
//     the lock is given back. distlock still exits with CMD's status.
//   - If distlock itself dies, even by kill -9, the supervisor kills the
//     whole group (SIGKILL) at once and exits, so that no process of it
//     runs on without the lock being renewed.
//
// A process that leaves CMD's group (setsid or setpgid: a daemon) is not
// stopped with it; a nested distlock run has a supervisor of its own.
//
// # Terminals
//
// When distlock runs in the foreground of its terminal, CMD's group takes
// the terminal while CMD runs and gives it back when CMD ends: one Ctrl-C
// gives CMD one SIGINT (distlock does not see it), and CMD reads the
// terminal as if it ran alone. Ctrl-Z stops CMD and distlock's job
// together and gives the terminal back to the shell; fg (or bg) continues
// both. Another command of distlock's pipeline that reads the terminal
// (distlock run k -- make | less) stops the job the first time it does,
// CMD with it; after fg it has the terminal, and Ctrl-C reaches CMD's group
// through distlock.
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
// The process group and its supervisor work on every Unix. On Linux the
// supervisor is also a subreaper: grandchildren orphaned inside CMD's tree
// become its children, not init's, and are reaped as soon as they end.
//
// A stop of distlock that does not come through its terminal (kill -STOP,
// or kill -TSTP of its job) stops distlock only: CMD runs on while the lock
// is not renewed, and if the lock is lost meanwhile, distlock stops CMD's
// group and exits 76 once continued.
//
// On Windows CMD runs as a plain child: signals, a loss and the end of CMD
// reach CMD only, not the processes it starts; if distlock itself is killed
// (kill -9, a crash), CMD runs on until it ends while the lock expires after
// its TTL. CMD cannot be sent SIGTERM there: a lost lock kills it at once.
package main
