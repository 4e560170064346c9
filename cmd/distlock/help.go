package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/distlock/distlock"
)

const shortUsage = `usage: distlock run [flags] KEY -- CMD [ARGS...]
       distlock status [--store URL] [--json] KEY
       distlock migrate [--store URL] [--print]
       distlock gc [--store URL] [--older-than D]
       distlock help [run|status|migrate|gc]
       distlock version
Run 'distlock help' for details.
`

// help is "distlock help [TOPIC]" (also -h, --help): on stdout, exit 0.
func (c *cli) help(args []string) int {
	switch {
	case len(args) == 0:
		writeHelp(c.stdout, c.getenv)
	case len(args) == 1 && args[0] == "run":
		writeRunUsage(c.stdout, runFlags(&runOptions{}))
	case len(args) == 1 && args[0] == "status":
		var store string
		var asJSON bool
		writeStatusUsage(c.stdout, statusFlags(&store, &asJSON))
	case len(args) == 1 && args[0] == "migrate":
		var store string
		var print bool
		writeMigrateUsage(c.stdout, migrateFlags(&store, &print))
	case len(args) == 1 && args[0] == "gc":
		var store string
		var age ageFlag
		writeGCUsage(c.stdout, gcFlags(&store, &age))
	default:
		c.errorf("help: unknown topic %q (topics: run, status, migrate, gc)", strings.Join(args, " "))
		return exitUsage
	}
	return exitOK
}

func writeRunUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: distlock run [flags] KEY -- CMD [ARGS...]

Takes the lock KEY (waiting for it as --wait says), runs CMD with its
arguments exactly as given (no shell) while renewing the lock, releases the
lock when CMD exits, and exits with CMD's status. Flags come before KEY.
CMD's environment gains DISTLOCK_KEY and DISTLOCK_FENCE.
`)
	if supervisedTree {
		fmt.Fprint(w, `
CMD runs in a process group of its own: signals passed on and a lost lock
reach what CMD starts too, and when CMD exits, what is left of its group
gets SIGTERM, then SIGKILL --grace later, before the lock is released.
`)
	}
	fmt.Fprint(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, "\nRun 'distlock help' for exit codes, signals and the default store.\n")
}

func writeStatusUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: distlock status [--store URL] [--json] KEY

Prints whether KEY is held and, if so, the holder's owner metadata, its
fence and the time left by the store's clock. Exits 0 whether KEY is held or
free.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// writeHelp prints the full help. The exit codes come from the constants.
func writeHelp(w io.Writer, getenv func(string) string) {
	defaultStore := "none here: "
	if file, err := defaultStorePath(runtime.GOOS, getenv); err != nil {
		defaultStore += err.Error()
	} else {
		defaultStore = sqliteURL(runtime.GOOS, file)
	}
	tree := `CMD runs in a process group of its own, under distlock's supervisor
  (ps: distlock-supervisor), and all of the above reaches the whole group,
  grandchildren included. When CMD exits, what is left of its group (a
  background grandchild) gets SIGTERM, then SIGKILL --grace later, and the
  lock is released only once the group is empty: no process of CMD's group
  runs after the lock is given back. If distlock itself dies, even by
  kill -9, the supervisor kills the whole group. A process that leaves the
  group (setsid: a daemon) is not stopped with it.
  In the foreground of a terminal, CMD's group has the terminal while CMD
  runs: one Ctrl-C gives CMD one SIGINT, and CMD can read the terminal.
  Ctrl-Z stops CMD and distlock's job together; fg continues both.`
	if !supervisedTree {
		tree = `On this platform signals, a loss and the end of CMD reach CMD only, not
  the processes it starts; if distlock itself is killed (kill -9, a crash),
  CMD runs on until it ends while the lock expires after its TTL.`
	}
	fmt.Fprintf(w, `distlock runs a command while it holds a distributed lock: flock(1) for
cron jobs and deploy steps that run on several machines.

Usage:
  distlock run [--store URL] [--ttl D] [--wait D] [--grace D] [--owner S] KEY -- CMD [ARGS...]
  distlock status [--store URL] [--json] KEY
  distlock migrate [--store URL] [--print]
  distlock gc [--store URL] [--older-than D]
  distlock help [run|status|migrate|gc]
  distlock version

Flags come before KEY; "--" ends distlock's arguments and CMD follows it.
A KEY cannot start with "-".

run
  Waits for the lock: forever by default (like flock), --wait 0 tries once,
  --wait 30s gives up after 30 seconds. On a terminal it says once what it
  waits for and who holds the lock. While CMD runs, the lock is renewed every
  TTL/3 (--ttl, default %v). CMD is executed directly, without a shell, with
  DISTLOCK_KEY and DISTLOCK_FENCE added to the environment. SIGINT, SIGTERM
  and SIGHUP are passed on to CMD, once each, and distlock waits for CMD to
  exit; while distlock waits for the lock, they end the wait. When CMD exits
  the lock is released and distlock exits with CMD's status. If the lock is
  lost while CMD runs (the store expired or reassigned it: distlock was
  paused, or the store was unreachable for a whole TTL), distlock says so,
  sends CMD SIGTERM, SIGKILL --grace later (default %v), and exits %d.
  %s

status
  Prints whether KEY is held and by whom (owner, fence, time left); --json
  prints {"key", "held", "owner", "fence", "ttl_ms"}. Exits 0 whether the key
  is held or free.

migrate
  Creates the lock table of an SQL store (sqlite, postgres, mysql) if it is
  missing, as a Client does on first use unless the URL says
  create_table=false; --print writes the SQL on stdout instead, without
  connecting. Exits 0 when the table is ready.

gc
  Deletes the records an SQL store keeps of keys nobody has held for
  --older-than (default 24h; a bare number is seconds) by the store's clock,
  and prints how many went; fences stay increasing. Other stores keep
  nothing of free keys: gc says so and exits 0.

Exit codes:
  %-7d success: CMD exited 0; status answered (held or free)
  %-7d usage: bad flags, missing --, missing CMD, bad KEY or TTL,
          malformed or unknown store URL
  %-7d the store cannot be reached, or another store error
  %-7d the lock was not acquired within --wait (the message names the holder)
  %-7d the lock was lost while CMD ran (CMD was stopped), or the store said
          it was no longer held when CMD ended
  %-7d CMD was found but cannot be executed
  %-7d CMD was not found
  %d+N   CMD died by signal N (143 for SIGTERM); or signal N ended the wait for
          the lock (130 for SIGINT)
  other   CMD's own exit status
  Any other failure to release the lock after CMD exits is a warning on
  stderr: distlock still exits with CMD's status, and the lock expires by
  its TTL.

Environment:
  DISTLOCK_STORE  the store URL when --store is not given
  DISTLOCK_KEY    set for CMD: the lock's key
  DISTLOCK_FENCE  set for CMD: the lock's fencing token, a number that grows
                  with every acquisition of KEY; pass it to what CMD writes to
                  and have it refuse a fence lower than one it has seen
  XDG_STATE_HOME, HOME, LocalAppData: where the default store lives

Store:
  --store URL, else $DISTLOCK_STORE, else the SQLite file locks.db in the
  user's state directory:
    Linux, macOS, other Unix: $XDG_STATE_HOME/distlock/locks.db if
                              XDG_STATE_HOME is an absolute path, else
                              ~/.local/state/distlock/locks.db
    Windows:                  %%LocalAppData%%\distlock\locks.db
  Here: %s
  Schemes in this binary: %s.
  SQLite store URLs are sqlite:///abs/path.db or sqlite:rel/path.db. A SQLite
  store coordinates the processes of one machine; use a server store to
  coordinate machines.

Platform notes:
  A stop of distlock that does not come through its terminal (kill -STOP)
  stops distlock only: CMD runs on while the lock is not renewed. On
  Windows CMD cannot be sent SIGTERM: a lost lock kills it at once.
`,
		distlock.DefaultTTL, defaultGrace, exitLost, tree,
		exitOK, exitUsage, exitUnavailable, exitLocked, exitLost, exitCannotExec, exitNotFound, exitSignalBase,
		defaultStore, strings.Join(distlock.Schemes(), ", "))
}

// version is the main module's version, "(devel)" when built from a work tree.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
