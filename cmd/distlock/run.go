package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/distlock/distlock"
)

// runOptions are the parsed arguments of distlock run.
type runOptions struct {
	store      string
	storeGiven bool
	ttl        time.Duration
	wait       waitFlag
	grace      time.Duration
	owner      string
	ownerGiven bool
	key        string
	argv       []string // CMD and its arguments, exactly as given
}

const defaultGrace = 10 * time.Second

// run is "distlock run": take the lock, run CMD under it, release it, and exit
// with CMD's status.
func (c *cli) run(ctx context.Context, args []string) int {
	o, code := c.parseRun(args)
	if o == nil {
		return code
	}
	store, err := chooseStore(o.store, o.storeGiven, c.getenv)
	if err != nil {
		c.errorf("%v", err)
		return exitUsage
	}

	// Subscribe before anything can block: until CMD starts, a signal ends
	// the wait; while CMD runs, signals are passed on to it.
	sigs := make(chan os.Signal, 8)
	notifySignals(sigs)
	defer signal.Stop(sigs)
	waitCtx, interrupt := context.WithCancelCause(ctx)
	defer interrupt(nil)
	stopWatching := watchSignals(sigs, interrupt)

	client, err := distlock.Open(waitCtx, store, c.openOptions(o)...)
	if err != nil {
		stopWatching()
		if code, ok := c.interrupted(waitCtx, o.key); ok {
			return code
		}
		c.errorf("%s", trimPrefix(err))
		return errorCode(err)
	}
	defer c.closeClient(client)

	l, code := c.acquire(waitCtx, client, o)
	stopWatching()
	if code, ok := c.interrupted(waitCtx, o.key); ok {
		if l != nil {
			c.release(ctx, l)
		}
		return code
	}
	if l == nil {
		return code
	}
	return c.runCMD(ctx, l, o, sigs)
}

// parseRun parses "distlock run" arguments. On a mistake, or for -h, it
// prints what it must and returns nil and the exit code.
func (c *cli) parseRun(args []string) (*runOptions, int) {
	o := &runOptions{}
	fs := runFlags(o)
	fs.SetOutput(c.stderr)

	// run, not the flag package, owns the separator: "--" always ends
	// distlock's arguments, even right after the flags with KEY forgotten.
	head, argv, hasSep := args, []string(nil), false
	if i := slices.Index(args, "--"); i >= 0 {
		head, argv, hasSep = args[:i], args[i+1:], true
	}
	if err := fs.Parse(head); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exitOK
		}
		return nil, exitUsage // the flag package has said what is wrong
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "store":
			o.storeGiven = true
		case "owner":
			o.ownerGiven = true
		}
	})

	rest := fs.Args()
	late := ""
	if len(rest) > 1 {
		late = flagAfterKey(fs, rest[1:])
	}
	switch {
	case len(rest) == 0 && hasSep:
		return nil, c.usageError("run", "missing KEY before --")
	case len(rest) == 0:
		return nil, c.usageError("run", "missing KEY and -- CMD")
	case late != "":
		return nil, c.usageError("run", "flag %s comes after KEY %q: flags must come before KEY, as in\n  distlock run %s ... %s -- CMD",
			late, rest[0], late, rest[0])
	case !hasSep:
		return nil, c.usageError("run", "missing -- between KEY and CMD, as in\n  distlock run [flags] %s -- CMD [ARGS...]", rest[0])
	case len(rest) > 1:
		return nil, c.usageError("run", "expected one KEY before --, got %d words %q", len(rest), rest)
	case len(argv) == 0:
		return nil, c.usageError("run", "missing CMD after --")
	}
	o.key, o.argv = rest[0], argv

	if err := distlock.ValidateKey(o.key); err != nil {
		return nil, c.usageError("run", "%s", trimPrefix(err))
	}
	if o.ttl <= 0 {
		return nil, c.usageError("run", "--ttl %v must be positive", o.ttl)
	}
	if o.grace < 0 {
		return nil, c.usageError("run", "--grace %v must not be negative", o.grace)
	}
	return o, exitOK
}

// runFlags defines the flags of distlock run, bound to o.
func runFlags(o *runOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("distlock run", flag.ContinueOnError)
	fs.Usage = func() { writeRunUsage(fs.Output(), fs) }
	fs.StringVar(&o.store, "store", "", "store `URL` (default: $DISTLOCK_STORE, else the default SQLite store)")
	fs.DurationVar(&o.ttl, "ttl", distlock.DefaultTTL, "lock `TTL`: how long the lock outlives a holder that stops renewing it")
	fs.Var(&o.wait, "wait", "how long to wait for the lock: a `duration`, 0 to try once, or forever (default forever)")
	fs.DurationVar(&o.grace, "grace", defaultGrace, "the `time` between SIGTERM and SIGKILL to CMD's process group when the lock is lost, and to what CMD leaves behind")
	fs.StringVar(&o.owner, "owner", "", "metadata stored with the lock and shown by status (default host:pid)")
	return fs
}

// openOptions makes the TTL and owner the client's defaults: the client
// exists for this one lock.
func (c *cli) openOptions(o *runOptions) []distlock.Option {
	opts := []distlock.Option{distlock.WithLogger(c.logger()), distlock.WithTTL(o.ttl)}
	if o.ownerGiven {
		opts = append(opts, distlock.WithOwner(o.owner))
	}
	return opts
}

// acquire takes the lock as --wait says. It returns the lock, or nil and the
// exit code after printing why. When ctx was interrupted it prints nothing:
// the caller reports the interruption.
func (c *cli) acquire(ctx context.Context, client *distlock.Client, o *runOptions) (*distlock.Lock, int) {
	lctx := ctx
	if o.wait.set && o.wait.d > 0 {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(ctx, o.wait.d)
		defer cancel()
	}
	var l *distlock.Lock
	var err error
	switch {
	case o.wait.tryOnce():
		l, err = client.TryLock(lctx, o.key)
	case c.tty:
		// Try once first, so a wait that is about to start can be announced
		// with who is in the way.
		l, err = client.TryLock(lctx, o.key)
		if errors.Is(err, distlock.ErrLocked) {
			c.sayWaiting(lctx, client, o, err)
			l, err = client.Lock(lctx, o.key)
		}
	default:
		l, err = client.Lock(lctx, o.key)
	}
	switch {
	case err == nil:
		return l, exitOK
	case ctx.Err() != nil:
		return nil, 0
	case errors.Is(err, distlock.ErrLocked), lctx.Err() != nil:
		// The wait ran out. (Lock's error wraps ErrLocked then, except when
		// the deadline struck in the middle of an attempt.)
		c.notAcquired(ctx, client, o, err)
		return nil, exitLocked
	default:
		c.errorf("%s", trimPrefix(err))
		return nil, errorCode(err)
	}
}

// sayWaiting tells a terminal user, once, what distlock is waiting for.
func (c *cli) sayWaiting(ctx context.Context, client *distlock.Client, o *runOptions, err error) {
	what := fmt.Sprintf("waiting for lock %q", o.key)
	if o.wait.set {
		what = fmt.Sprintf("waiting up to %v for lock %q", o.wait.d, o.key)
	}
	if h, ok := holder(ctx, client, o.key, err); ok {
		c.errorf("%s, held by %s", what, h)
		return
	}
	c.errorf("%s", what)
}

// notAcquired explains exit 75, naming the holder when the store says.
func (c *cli) notAcquired(ctx context.Context, client *distlock.Client, o *runOptions, err error) {
	within := ""
	if !o.wait.tryOnce() {
		within = " within " + o.wait.String()
	}
	if h, ok := holder(ctx, client, o.key, err); ok {
		c.errorf("lock %q not acquired%s: held by %s", o.key, within, h)
		return
	}
	c.errorf("lock %q not acquired%s: %s", o.key, within, trimPrefix(err))
}

// holder describes who holds key: from err (the contention answer) when the
// store said there, else by asking the store, for a moment at most.
func holder(ctx context.Context, client *distlock.Client, key string, err error) (string, bool) {
	if st, ok := distlock.HolderOf(err); ok {
		return describeHolder(st), true
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	st, err := client.Status(ctx, key)
	if err != nil || !st.Held {
		return "", false
	}
	return describeHolder(st), true
}

// describeHolder renders a held Status as "web1:4242 (fence 7, 12.5s left)".
func describeHolder(st distlock.Status) string {
	who := st.Owner
	if who == "" {
		who = "an unnamed holder"
	}
	details := []string{"fence " + strconv.FormatUint(st.Fence, 10)}
	if st.TTL > 0 {
		details = append(details, st.TTL.Round(100*time.Millisecond).String()+" left")
	}
	return who + " (" + strings.Join(details, ", ") + ")"
}

// runCMD runs CMD's tree while l is held and returns distlock's exit status.
func (c *cli) runCMD(ctx context.Context, l *distlock.Lock, o *runOptions, sigs <-chan os.Signal) int {
	if err := l.Err(); err != nil {
		c.errorf("lock %q lost before CMD started: %s", o.key, trimPrefix(err))
		return exitLost
	}
	env := append(os.Environ(),
		"DISTLOCK_KEY="+o.key,
		"DISTLOCK_FENCE="+strconv.FormatUint(l.Fence(), 10))
	t, err := startTree(o.argv, env, c.stdin, c.stdout, c.stderr)
	if err != nil {
		c.errorf("cannot run %s: %v", o.argv[0], err)
		c.release(ctx, l)
		return startFailureCode(err)
	}

	var (
		lost     error
		lockDone = l.Done()
		ctxDone  = ctx.Done()
		ended    = t.ended()
		stopping bool
		timer    *time.Timer // SIGKILL after --grace, then the end of the wait for the group to empty
		timerC   <-chan time.Time
		killed   bool
	)
	// stop sends CMD's group SIGTERM now and SIGKILL after the grace period.
	stop := func() {
		if stopping {
			return
		}
		stopping = true
		t.terminate()
		timer = time.NewTimer(o.grace)
		timerC = timer.C
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
wait:
	for {
		select {
		case <-ended:
			ended = nil
			if status, left := t.result(); left && !stopping {
				c.errorf("CMD ended with status %d and left processes in its group; stopping them (SIGTERM, then SIGKILL after %v)",
					status, o.grace)
				stop()
			}
		case <-t.gone():
			break wait
		case s := <-sigs:
			if err := t.signal(s); err != nil {
				c.errorf("warning: cannot pass %v on to CMD: %v", s, err)
			}
		case <-lockDone:
			lockDone = nil
			if err := l.Err(); err != nil {
				lost = err
				stop() // first: the message could block on a terminal
				c.errorf("lock %q lost while CMD ran: %s; stopping CMD (SIGTERM, then SIGKILL after %v)",
					o.key, trimPrefix(err), o.grace)
			}
		case <-ctxDone:
			// Only in-process callers cancel ctx: treat it like SIGTERM
			// from a supervisor.
			ctxDone = nil
			stop()
		case <-timerC:
			if killed {
				// Killed processes that linger (in an uninterruptible
				// sleep) run no more of their code.
				c.errorf("warning: processes of CMD's group remain %v after SIGKILL; not waiting for them", killWait)
				t.abandon()
				<-t.gone()
				break wait
			}
			killed = true
			t.kill()
			timer.Reset(killWait)
		}
	}

	status := 1
	select {
	case <-t.ended():
		status, _ = t.result()
		if err := t.failure(); err != nil {
			c.errorf("warning: copying CMD's output: %v", err)
		}
	default:
		c.errorf("%v", t.failure())
	}

	if lost == nil {
		lost = l.Err() // lost just as CMD ended
	}
	if lost != nil {
		c.errorf("lock %q was lost while CMD ran (CMD ended with status %d)", o.key, status)
		return exitLost
	}
	if err := c.unlock(ctx, l); err != nil {
		if errors.Is(err, distlock.ErrNotHeld) {
			c.errorf("lock %q was no longer held when CMD ended with status %d: %s; CMD may have run unprotected",
				o.key, status, trimPrefix(err))
			return exitLost
		}
		c.errorf("warning: %s (the lock expires by its TTL)", trimPrefix(err))
	}
	return status
}

// killWait is how long distlock waits for CMD's group to empty after
// SIGKILL before it lets go of it.
const killWait = 5 * time.Second

// unlock releases l, giving the store a few seconds at most.
func (c *cli) unlock(ctx context.Context, l *distlock.Lock) error {
	d := min(max(time.Until(l.Deadline()), time.Second), 10*time.Second)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	return l.Unlock(ctx)
}

// release unlocks l on a path that does not run CMD, warning on failure.
func (c *cli) release(ctx context.Context, l *distlock.Lock) {
	if err := c.unlock(ctx, l); err != nil {
		c.errorf("warning: %s (the lock expires by its TTL)", trimPrefix(err))
	}
}

// interruption is the cause of a wait ended by a signal.
type interruption struct{ sig os.Signal }

func (i interruption) Error() string { return "interrupted by " + i.sig.String() }

// interrupted reports whether ctx was ended by a signal (or by the caller,
// counted as SIGINT) and, if so, prints it and returns 128+N.
func (c *cli) interrupted(ctx context.Context, key string) (int, bool) {
	if ctx.Err() == nil {
		return 0, false
	}
	sig := os.Signal(syscall.SIGINT)
	var in interruption
	if errors.As(context.Cause(ctx), &in) {
		sig = in.sig
	}
	c.errorf("interrupted (%v) while waiting for lock %q", sig, key)
	return exitSignalBase + signalNumber(sig), true
}

func signalNumber(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return int(n)
	}
	return int(syscall.SIGINT)
}

// notifySignals relays the forwarded signals to ch, except those distlock
// was started with ignored (nohup): CMD inherits those still ignored.
func notifySignals(ch chan<- os.Signal) {
	for _, s := range forwardedSignals {
		if !signal.Ignored(s) {
			signal.Notify(ch, s)
		}
	}
}

// watchSignals cancels the wait with the first signal from sigs, until the
// returned stop is called.
func watchSignals(sigs <-chan os.Signal, interrupt context.CancelCauseFunc) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case s := <-sigs:
			interrupt(interruption{s})
		case <-quit:
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// waitFlag is --wait: unset means forever.
type waitFlag struct {
	d   time.Duration
	set bool
}

func (w *waitFlag) tryOnce() bool { return w.set && w.d == 0 }

func (w *waitFlag) String() string {
	if w == nil || !w.set {
		return "forever"
	}
	return w.d.String()
}

func (w *waitFlag) Set(s string) error {
	if s == "forever" {
		*w = waitFlag{}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 30s or 5m, 0 to try once, or forever")
	}
	if d < 0 {
		return errors.New("must not be negative")
	}
	*w = waitFlag{d: d, set: true}
	return nil
}

// trimPrefix is err's message without the library's "distlock: " prefix,
// for messages distlock prefixes itself.
func trimPrefix(err error) string {
	return strings.TrimPrefix(err.Error(), "distlock: ")
}
