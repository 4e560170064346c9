package distlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/distlock/distlock/driver"
)

// Client takes locks in one store. It is safe for concurrent use. One Client
// runs one background goroutine, which renews every lock it holds in batches;
// Close stops it and releases what is still held.
type Client struct {
	drv      driver.Driver
	info     driver.Info
	cfg      clientConfig
	log      *slog.Logger
	notifier driver.Notifier
	queuer   driver.Queuer
	metrics  metrics

	mu      sync.Mutex
	closed  bool
	held    map[*Lock]struct{}
	kick    chan struct{} // wakes the renewal loop when the held set changes
	planned time.Time     // when the renewal loop next wakes, at the latest (guarded by mu)
	pokes   int           // wake-ups asked for by track (guarded by mu; for tests)
	// nextPurge is when WithAutoPurge purges next (renewal loop only).
	nextPurge time.Time
	closing   context.Context // cancelled by Close: pending Lock calls return
	doClose   context.CancelFunc
	bgCtx     context.Context // background releases; cancelled at the end of Close
	bgCancel  context.CancelFunc
	stop      context.CancelFunc
	loop      sync.WaitGroup // the renewal loop
	renewals  sync.WaitGroup // renewal batches in flight
	ops       sync.WaitGroup // calls in flight; Close waits for them
	bg        sync.WaitGroup // background releases after ambiguous outcomes
}

// NewClient wraps a driver in the portable Client. Driver packages call it
// from their constructors; users normally call Open or a driver's New.
func NewClient(drv driver.Driver, opts ...Option) (*Client, error) {
	if drv == nil {
		return nil, fmt.Errorf("%w: nil driver", ErrInvalid)
	}
	cfg := defaultClientConfig()
	for _, o := range opts {
		if o != nil {
			o.applyClient(&cfg)
		}
	}
	info := drv.Info()
	if cfg.lock.err != nil {
		return nil, &Error{Op: "open", Backend: info.Name, Err: cfg.lock.err}
	}
	if err := checkTTL(&cfg.lock, info); err != nil {
		return nil, &Error{Op: "open", Backend: info.Name, Err: err}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	c := &Client{
		drv:     drv,
		info:    info,
		cfg:     cfg,
		log:     cfg.logger.With("backend", info.Name),
		held:    make(map[*Lock]struct{}),
		kick:    make(chan struct{}, 1),
		metrics: newMetrics(cfg.meter, info.Name),
	}
	c.closing, c.doClose = context.WithCancel(context.Background())
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	c.notifier, _ = drv.(driver.Notifier)
	c.queuer, _ = drv.(driver.Queuer)
	ctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	c.loop.Add(1)
	go c.renewLoop(ctx)
	return c, nil
}

// Backend returns the driver's name ("sqlite", "redis", ...).
func (c *Client) Backend() string { return c.info.Name }

// TryLock makes one attempt to take key. If someone else holds it, the error
// wraps ErrLocked (and the holder's owner metadata when the store reported
// it); if the store could not be asked, or could not say whether the attempt
// took the lock, ErrUnavailable (anything the attempt may have taken is
// given back in the background). Cost: one round trip; two when the outcome
// was ambiguous and had to be read back.
func (c *Client) TryLock(ctx context.Context, key string, opts ...LockOption) (*Lock, error) {
	cfg, err := c.prepare("trylock", key, opts)
	if err != nil {
		return nil, err
	}
	defer c.ops.Done()
	l, err := c.acquire(ctx, key, cfg, c.drv.Acquire)
	if errors.Is(err, driver.ErrRetry) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err) // not contention: nobody was found holding it
	}
	if err != nil {
		return nil, c.wrap("trylock", key, err)
	}
	return l, nil
}

// Lock takes key, waiting as long as ctx allows. ctx bounds the waiting only,
// never the life of the lock: the lock stays held, and renewed, until
// Unlock, loss or Close. A store that fails for a while (unreachable,
// undecided, an answer lost) is tried again with back-off until ctx ends.
// When ctx ends first, the error wraps ctx's error and ErrLocked if someone
// held the key, or ErrUnavailable if the store kept failing.
//
// How it waits depends on the store: with stores that wake waiters (pub/sub,
// LISTEN/NOTIFY, etcd's queue) it sleeps until woken; otherwise it retries
// with jittered exponential back-off (WithBackoff), never sleeping past the
// holder's expiry when the store reported it.
func (c *Client) Lock(ctx context.Context, key string, opts ...LockOption) (*Lock, error) {
	cfg, err := c.prepare("lock", key, opts)
	if err != nil {
		return nil, err
	}
	defer c.ops.Done()
	var l *Lock
	if c.queuer != nil {
		l, err = c.queue(ctx, key, cfg)
	} else {
		l, err = c.wait(ctx, key, cfg)
	}
	if err != nil {
		return nil, c.wrap("lock", key, err)
	}
	return l, nil
}

// prepare validates a lock call and, when it returns nil, counts it in
// flight: the caller must call c.ops.Done.
func (c *Client) prepare(op, key string, opts []LockOption) (lockConfig, error) {
	if err := ValidateKey(key); err != nil {
		return lockConfig{}, c.wrap(op, "", err)
	}
	cfg, err := c.resolve(opts)
	if err != nil {
		return cfg, c.wrap(op, key, err)
	}
	if err := c.begin(); err != nil {
		return cfg, c.wrap(op, key, err)
	}
	return cfg, nil
}

// begin counts a call in flight, or says the Client is closed.
func (c *Client) begin() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.ops.Add(1)
	return nil
}

// queue waits in the store's own queue (driver.Queuer). The driver blocks,
// so its context also ends when the Client closes. A transient failure (the
// store could not be asked, a wait the driver had to give up) is retried
// with back-off until ctx ends.
func (c *Client) queue(ctx context.Context, key string, cfg lockConfig) (*Lock, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(c.closing, func() { cancel(ErrClosed) })
	defer stop()
	r := retrier{c: c, key: key, backoff: cfg.minBackoff, max: cfg.maxBackoff}
	for {
		l, err := c.acquire(ctx, key, cfg, c.queuer.AcquireWait)
		if err == nil || ctx.Err() != nil || !retryable(err) {
			return l, err
		}
		if err := r.pause(ctx, err, nil); err != nil {
			return nil, err
		}
	}
}

// wait tries, and between tries sleeps until woken, until the lock is taken,
// ctx ends or the Client closes. Each try runs on the caller's ctx as
// TryLock's does: a context derived here (to end with Close) would cost
// database drivers a goroutine hand-off per statement (go-sql-driver/mysql
// watches every cancellable context), a tenth of an uncontended Lock.
func (c *Client) wait(ctx context.Context, key string, cfg lockConfig) (*Lock, error) {
	var wake <-chan struct{}
	if c.notifier != nil {
		w, cancel, err := c.notifier.Subscribe(ctx, key)
		if err == nil {
			defer cancel()
			wake = w
		} else if ctx.Err() == nil {
			c.log.Debug("distlock: wake-up subscription failed; polling instead", "key", key, "err", err)
		}
	}
	backoff := cfg.minBackoff
	var timer *time.Timer
	var locked error // the last contention seen
	r := retrier{c: c, key: key, backoff: cfg.minBackoff, max: cfg.maxBackoff}
	for {
		l, err := c.acquire(ctx, key, cfg, c.drv.Acquire)
		if err == nil {
			return l, nil
		}
		if ctx.Err() != nil {
			// The wait ran out, perhaps during an attempt: report the
			// contention that made us wait, if there was one.
			if locked != nil && !errors.Is(err, ErrLocked) {
				err = locked
			}
			if !errors.Is(err, context.Cause(ctx)) {
				err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
			}
			return nil, err
		}
		if !errors.Is(err, ErrLocked) {
			if !retryable(err) {
				return nil, err
			}
			if err := r.pause(ctx, err, locked); err != nil {
				return nil, err
			}
			continue
		}
		locked = err
		r.reset()
		d := jitter(backoff)
		backoff = min(backoff*2, cfg.maxBackoff)
		if wake != nil {
			d = cfg.maxBackoff
		}
		var held *driver.HeldError
		if errors.As(err, &held) && held.Holder.TTL > 0 && held.Holder.TTL < d {
			d = held.Holder.TTL + time.Millisecond
		}
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", context.Cause(ctx), err)
		case <-c.closing.Done():
			return nil, fmt.Errorf("%w: %w", ErrClosed, err)
		case <-wake:
			backoff = cfg.minBackoff
		case <-timer.C:
		}
	}
}

// retryable reports whether Lock tries again after err: the store could
// not be asked or could not decide, or the attempt's outcome was decided
// as "not taken". Invalid input, a closed Client and contention (which
// has its own wait) are not retried this way.
func retryable(err error) bool {
	if errors.Is(err, ErrInvalid) || errors.Is(err, ErrClosed) {
		return false
	}
	return errors.Is(err, ErrUnavailable) || errors.Is(err, driver.ErrRetry) ||
		errors.Is(err, errTooLate) || errors.Is(err, ErrLost) || errors.Is(err, ErrLocked)
}

// retrier spaces a Lock's retries after transient failures: jittered
// exponential back-off between the Lock's minimum and maximum, a warning
// the first time, and on ctx's end an error that wraps ctx's cause and the
// last failure (and the contention seen before it, if any).
type retrier struct {
	c       *Client
	key     string
	backoff time.Duration
	max     time.Duration
	failed  int
}

func (r *retrier) reset() { r.failed = 0 }

func (r *retrier) pause(ctx context.Context, err, locked error) error {
	r.failed++
	if r.failed == 1 {
		r.c.log.Warn("distlock: lock attempt failed; retrying until the wait ends", "key", r.key, "err", err)
	}
	d := jitter(r.backoff)
	r.backoff = min(r.backoff*2, r.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		if locked != nil {
			return fmt.Errorf("%w: %w (after: %w)", context.Cause(ctx), locked, err)
		}
		return fmt.Errorf("%w: %w", context.Cause(ctx), err)
	case <-r.c.closing.Done():
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case <-t.C:
		return nil
	}
}

type acquireFunc func(context.Context, driver.AcquireRequest) (driver.Lease, error)

// acquire makes one attempt through try and, when its outcome is unknown,
// reads back by token before answering: it never returns an error while
// holding the lock, and never a lock it does not hold. Every error it
// returns wraps a sentinel.
func (c *Client) acquire(ctx context.Context, key string, cfg lockConfig, try acquireFunc) (*Lock, error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	req := driver.AcquireRequest{Key: key, Token: newToken(), TTL: cfg.ttl, Owner: cfg.owner}
	start := time.Now()
	lease, err := try(ctx, req)
	if err != nil && !definite(err) {
		lease, err = c.readBack(ctx, req, err)
	}
	answered := time.Now()
	c.metrics.acquired(ctx, err, answered.Sub(start))
	if err != nil {
		return nil, err
	}
	if lease.TTL == 0 {
		lease.TTL = req.TTL
	}
	if lease.Fence == 0 {
		// A lock without a fence cannot be told apart from its successors
		// by the resource it protects: give it back.
		c.releaseLater(lease, fixedHorizon(goneBy(answered, lease.TTL)))
		return nil, fmt.Errorf("%w: the store granted the lock without a fence; it is being released", ErrUnavailable)
	}
	if !lease.Since.IsZero() && lease.Since.Before(start) {
		start = lease.Since // the store's TTL began before our request
	}
	if time.Until(heldUntil(start, lease.TTL)) < cfg.interval() {
		// The answer came so late that the lock is due for renewal, or even
		// past its deadline: renew it before handing it out, so the caller
		// never gets a lock with no time left.
		if start, err = c.renewLate(ctx, lease); err != nil {
			return nil, err
		}
		answered = time.Now()
	}
	l := newLock(c, lease, cfg, start, answered)
	if err := c.track(l); err != nil {
		c.releaseLater(lease, l.storeHorizon)
		return nil, err
	}
	if ctx.Err() != nil {
		// The caller gave up while the store granted the lock: give it back.
		l.Unlock(context.WithoutCancel(ctx))
		return nil, context.Cause(ctx)
	}
	return l, nil
}

// errTooLate: the store granted the lock, but its answer arrived too late
// to be sure it is still held. Lock tries again; TryLock reports it.
var errTooLate = errors.New("the store answered too late for the lock's ttl")

// renewLate renews a lease whose grant arrived late and returns the send time
// of the renewal, the start of its fresh TTL. On failure the lease is given
// back and the error wraps errTooLate and ErrUnavailable.
func (c *Client) renewLate(ctx context.Context, lease driver.Lease) (time.Time, error) {
	sent := time.Now()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lease.TTL/2)
	err := c.renewOne(rctx, lease)
	cancel()
	if err == nil {
		return sent, nil
	}
	c.releaseLater(lease, fixedHorizon(goneBy(time.Now(), lease.TTL)))
	return time.Time{}, fmt.Errorf("%w: %w (renewal: %w)", ErrUnavailable, errTooLate, err)
}

// definite reports whether err is an answer rather than an unknown outcome.
func definite(err error) bool {
	return errors.Is(err, ErrLocked) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalid) ||
		errors.Is(err, ErrClosed) || errors.Is(err, driver.ErrRetry)
}

// readBack learns, by token, whether an attempt whose reply was lost took the
// lock. It keeps asking until the store answers, ctx ends, or the attempted
// TTL has run out, counted from the failure (a lock never renewed is gone one
// TTL after its request was last seen). Whenever it cannot hand the lock out
// (read back as not ours, no answer in time, ctx ended: the caller would give
// a lock back then anyway) it releases the token in the background, since the
// attempt may still land, and the error wraps ErrUnavailable: the attempt
// failed, whoever holds the key now.
func (c *Client) readBack(ctx context.Context, req driver.AcquireRequest, cause error) (driver.Lease, error) {
	expiry := goneBy(time.Now(), req.TTL)
	giveBack := func() {
		c.chaseLater(driver.Lease{Key: req.Key, Token: req.Token, TTL: req.TTL}, expiry)
	}
	backoff := 10 * time.Millisecond
	var last error
	for {
		if ctx.Err() != nil {
			giveBack()
			if last == nil {
				return driver.Lease{}, fmt.Errorf("%w: %w: outcome unknown (releasing in the background): %w", context.Cause(ctx), ErrUnavailable, cause)
			}
			return driver.Lease{}, fmt.Errorf("%w: %w: outcome unknown (read back failed: %v; releasing in the background): %w",
				context.Cause(ctx), ErrUnavailable, last, cause)
		}
		remaining := time.Until(expiry)
		if remaining <= 0 {
			return driver.Lease{}, fmt.Errorf("%w: outcome unknown, and any lock taken has expired: %w", ErrUnavailable, cause)
		}
		rctx, cancel := context.WithTimeout(ctx, min(remaining, time.Second))
		h, err := c.drv.Inspect(rctx, req.Key)
		cancel()
		if err == nil {
			switch {
			case h.Held && h.Token == req.Token:
				c.log.Debug("distlock: ambiguous acquire was granted", "key", req.Key, "err", cause)
				return driver.Lease{Key: req.Key, Token: req.Token, Fence: h.Fence, TTL: req.TTL}, nil
			case h.Held:
				// The holder may be this very attempt, on a session the
				// driver gave up: it is not contention, the attempt failed.
				giveBack()
				return driver.Lease{}, fmt.Errorf("%w: outcome unknown, read back: held by %s: %w", ErrUnavailable, ownerOrUnnamed(h.Owner), cause)
			default:
				giveBack()
				return driver.Lease{}, fmt.Errorf("%w: outcome unknown, read back: not held: %w", ErrUnavailable, cause)
			}
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(jitter(backoff)):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// chaseLater releases the token of an attempt whose outcome is unknown, in
// the background, again and again (spaced out to a second) until expiry,
// when a lock the attempt may yet take has expired by itself: a request held
// up on the way (a stalled connection, a queue in the server) may land after
// any one release.
func (c *Client) chaseLater(l driver.Lease, expiry time.Time) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.releaseUntil(c.bgCtx, l, fixedHorizon(expiry), c.closing.Done(), true)
	}()
}

func ownerOrUnnamed(owner string) string {
	if owner == "" {
		return "an unnamed holder"
	}
	return owner
}

// fixedHorizon is a release horizon that does not move.
func fixedHorizon(t time.Time) func() time.Time { return func() time.Time { return t } }

// releaseLater keeps trying to release l in the background until it
// succeeds, the store says it is not held, or horizon passes (the store has
// then let it go by itself). Close stops it after its own releases: the lock
// then expires by its TTL, and Close must not hang on a dead store.
func (c *Client) releaseLater(l driver.Lease, horizon func() time.Time) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.releaseLease(c.bgCtx, l, horizon, c.closing.Done())
	}()
}

// Status reports who holds key, by the store's clock. One round trip.
func (c *Client) Status(ctx context.Context, key string) (Status, error) {
	if err := ValidateKey(key); err != nil {
		return Status{}, c.wrap("status", "", err)
	}
	if err := c.begin(); err != nil {
		return Status{}, c.wrap("status", key, err)
	}
	defer c.ops.Done()
	h, err := c.drv.Inspect(ctx, key)
	if err != nil {
		return Status{}, c.wrap("status", key, err)
	}
	if !h.Held {
		return Status{Key: key}, nil
	}
	return Status{Key: key, Held: true, Owner: h.Owner, Fence: h.Fence, TTL: h.TTL}, nil
}

// Status is what Client.Status reads about a key. In JSON the TTL is
// "ttl_ms", whole milliseconds.
type Status struct {
	Key   string
	Held  bool
	Owner string        // the holder's WithOwner metadata
	Fence uint64        // the holder's fencing token
	TTL   time.Duration // time left by the store's clock; 0 if unknown
}

// MarshalJSON writes {"key", "held", "owner", "fence", "ttl_ms"}.
func (s Status) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Key   string `json:"key"`
		Held  bool   `json:"held"`
		Owner string `json:"owner,omitempty"`
		Fence uint64 `json:"fence,omitempty"`
		TTLMs int64  `json:"ttl_ms,omitempty"`
	}{s.Key, s.Held, s.Owner, s.Fence, s.TTL.Milliseconds()})
}

// HolderOf returns who held the key when err, from TryLock or Lock, reports
// contention, if the store said so at no extra cost (Held is false if not).
func HolderOf(err error) (Status, bool) {
	var h *driver.HeldError
	if !errors.As(err, &h) {
		return Status{}, false
	}
	var key string
	var e *Error
	if errors.As(err, &e) {
		key = e.Key
	}
	return Status{Key: key, Held: true, Owner: h.Holder.Owner, Fence: h.Holder.Fence, TTL: h.Holder.TTL}, true
}

// Close releases every lock the Client still holds (their Err then wraps
// ErrClosed), stops the renewal loop, waits for background releases and
// closes the driver. Pending Lock calls return ErrClosed; an attempt already
// sent to the store (by Lock or TryLock) is waited for, as long as the
// caller's context allows, so pass contexts with deadlines when a store
// that stops answering must not hold up Close. Close does not close a
// client or database handle the user passed to a driver constructor.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.doClose()
	c.mu.Unlock()
	c.ops.Wait() // pending Lock calls see closing and return

	c.mu.Lock()
	locks := make([]*Lock, 0, len(c.held))
	for l := range c.held {
		locks = append(locks, l)
	}
	c.mu.Unlock()

	// Release everything at once, under one time limit: a store that has
	// stopped answering costs Close 5s, not 5s per lock (the locks then
	// expire by their TTL).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	errc := make(chan error, len(locks))
	for _, l := range locks {
		go func() { errc <- l.release(ctx, ErrClosed) }()
	}
	var errs []error
	for range locks {
		if err := <-errc; err != nil && !errors.Is(err, ErrNotHeld) {
			errs = append(errs, err)
		}
	}
	cancel()
	c.stop()
	c.loop.Wait()
	c.renewals.Wait()
	c.bgCancel() // a release still in flight gives up: the lock expires by its TTL
	c.bg.Wait()
	if err := c.drv.Close(); err != nil {
		errs = append(errs, c.wrap("close", "", err))
	}
	return errors.Join(errs...)
}

// track adds a freshly acquired lock to the renewal set.
func (c *Client) track(l *Lock) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.held[l] = struct{}{}
	// Wake the loop only if this lock is due before its planned wake-up: a
	// wake-up per acquire costs the uncontended path a goroutine switch.
	due := l.deadline
	if l.autoRenew {
		due = earliest(due, l.nextRenew)
	}
	if due.Before(c.planned) {
		// The loop keeps this wake-up even if the lock is gone by the time
		// it runs (see renewDue), so the locks that follow within one
		// interval need no poke of their own.
		c.planned = due
		c.pokes++
		c.poke()
	}
	return nil
}

// poke wakes the renewal loop; c.mu need not be held.
func (c *Client) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Client) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Op == op {
		return err
	}
	return &Error{Op: op, Key: key, Backend: c.info.Name, Err: err}
}
