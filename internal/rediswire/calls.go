package rediswire

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/driver"
)

// HonoursContext reports whether c's calls return by their ctx's deadline:
// go-redis clients made with ContextTimeoutEnabled (a failover client is a
// *redis.Client). Without it go-redis bounds a call by its own timeouts
// only (ReadTimeout, 3s by default, or what the user set). Other
// implementations of redis.UniversalClient are taken not to.
func HonoursContext(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// ownBound is how long c's own timeouts may let one call run, when c does
// not honour ctx deadlines: a pool wait, then for each try (the first and
// every retry) a dial, a write and a read, with the back-off between. A
// client with a timeout switched off (-1), or of a type whose options are
// unknown, has no bound.
func ownBound(c redis.UniversalClient) time.Duration {
	const none = time.Duration(1<<63 - 1)
	var pool, dial, read, write, backoff time.Duration
	var retries int
	switch c := c.(type) {
	case *redis.Client:
		o := c.Options()
		pool, dial, read, write, backoff, retries = o.PoolTimeout, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff, o.MaxRetries
	case *redis.ClusterClient:
		o := c.Options()
		pool, dial, read, write, backoff, retries = o.PoolTimeout, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff, o.MaxRetries+o.MaxRedirects
	case *redis.Ring:
		o := c.Options()
		pool, dial, read, write, backoff, retries = o.PoolTimeout, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff, o.MaxRetries
	default:
		return none
	}
	if pool <= 0 || dial <= 0 || read <= 0 || write <= 0 {
		return none // a timeout off (or left to defaults the client did not fill in)
	}
	tries := time.Duration(max(retries, 0) + 1)
	return pool + tries*(dial+write+read) + (tries-1)*max(backoff, 0)
}

// CloseWait bounds how long a driver's Close waits for requests that still
// run in the background (on a client that does not honour ctx deadlines,
// a paused server holds them until the client's own timeouts): Close must
// not hang on a dead server.
const CloseWait = 10 * time.Second

// Background runs what outlives the call that started it (a request whose
// caller's ctx ended, a waiter's leaving the queue), so that a driver's
// Close can wait for it, for a bounded time.
type Background struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f in a goroutine of b. After Close it does not, and reports false.
func (b *Background) Go(f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

// Close makes later calls of Go refuse, and waits for the goroutines of b
// for at most wait. It reports whether they all ended.
func (b *Background) Close(wait time.Duration) bool {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Calls makes a driver's requests return by their ctx's end whatever the
// client does with ctx deadlines.
type Calls struct {
	direct bool          // the client honours ctx deadlines
	bound  time.Duration // how long the client's own timeouts may let a call run
	bg     *Background
}

// NewCalls returns the Calls of client, whose background requests run in bg.
func NewCalls(client redis.UniversalClient, bg *Background) *Calls {
	return &Calls{direct: HonoursContext(client), bound: ownBound(client), bg: bg}
}

// errNoAnswer: the caller's ctx ended before the client returned.
var errNoAnswer = errors.New("rediswire: no answer before the call's context ended")

// Run runs op with ctx and returns its result, by ctx's deadline at the
// latest. On a client that honours ctx deadlines, or when ctx has no
// deadline or one the client's own timeouts would end the call before, that
// is a plain call. Otherwise op runs in a goroutine (about 10µs more per
// call, measured: set ContextTimeoutEnabled on the client to save it): if
// ctx ends first, Run returns an error wrapping ctx's cause, of unknown
// outcome (the request may have reached the server, so never
// ErrUnavailable), and op runs on in the background until the client's own
// timeouts end it. The cancellation of a ctx without a deadline is then
// seen only when the client's timeouts end the call.
func Run[T any](ctx context.Context, c *Calls, op func(context.Context) (T, error)) (T, error) {
	if c.direct {
		return op(ctx)
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) >= c.bound {
		return op(ctx)
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1) // buffered: a late answer never blocks
	if !c.bg.Go(func() {
		v, err := op(ctx)
		ch <- result{v, err}
	}) {
		var zero T
		return zero, fmt.Errorf("%w: driver closed", driver.ErrUnavailable)
	}
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		select {
		case r := <-ch:
			return r.v, r.err
		default:
		}
		var zero T
		return zero, fmt.Errorf("%w (the client ignores ctx deadlines; set ContextTimeoutEnabled: the request runs on until its own timeout): %w",
			errNoAnswer, context.Cause(ctx))
	}
}

// paramContextTimeout is go-redis's URL name of ContextTimeoutEnabled (read
// by its failover URLs only; redis.ParseURL refuses it).
const paramContextTimeout = "context_timeout_enabled"

// TakeContextTimeout removes the context_timeout_enabled parameter from a
// URL's query. The clients a driver makes from a URL always honour ctx
// deadlines, since a driver's calls must return by them: true is accepted
// and changes nothing, false is an error.
func TakeContextTimeout(q url.Values) error {
	vals, ok := q[paramContextTimeout]
	if !ok {
		return nil
	}
	q.Del(paramContextTimeout)
	if len(vals) != 1 {
		return fmt.Errorf("parameter %s is given %d times", paramContextTimeout, len(vals))
	}
	on, err := strconv.ParseBool(vals[0])
	if err != nil {
		return fmt.Errorf("%s=%q: want true or false", paramContextTimeout, vals[0])
	}
	if !on {
		return fmt.Errorf("%s=false is not accepted: distlock's calls must return by their ctx deadline", paramContextTimeout)
	}
	return nil
}
