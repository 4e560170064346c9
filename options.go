package distlock

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Defaults applied when no option says otherwise.
const (
	DefaultTTL        = 15 * time.Second
	DefaultMinBackoff = 10 * time.Millisecond
	DefaultMaxBackoff = 500 * time.Millisecond
)

// Option configures a Client (at Open or NewClient). Options that also make
// sense for one lock are LockOptions; given to Open they set the Client's
// default for every lock.
type Option interface {
	applyClient(*clientConfig)
}

// LockOption configures one lock (Lock, TryLock, Do), or, given to Open, the
// Client's default.
type LockOption interface {
	Option
	applyLock(*lockConfig)
}

type lockConfig struct {
	ttl           time.Duration
	autoRenew     bool
	renewInterval time.Duration // 0: ttl/3
	minBackoff    time.Duration
	maxBackoff    time.Duration
	owner         string
	err           error // the first invalid option
}

type clientConfig struct {
	lock     lockConfig
	logger   *slog.Logger
	meter    metric.MeterProvider
	purgeAge time.Duration // WithAutoPurge; 0: off
}

func defaultClientConfig() clientConfig {
	return clientConfig{
		lock: lockConfig{
			ttl:        DefaultTTL,
			autoRenew:  true,
			minBackoff: DefaultMinBackoff,
			maxBackoff: DefaultMaxBackoff,
			owner:      defaultOwner(),
		},
	}
}

// defaultOwner is "hostname:pid", what status shows when no WithOwner is given.
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}

type lockOption func(*lockConfig)

func (f lockOption) applyLock(c *lockConfig)     { f(c) }
func (f lockOption) applyClient(c *clientConfig) { f(&c.lock) }

type clientOption func(*clientConfig)

func (f clientOption) applyClient(c *clientConfig) { f(c) }

func (c *lockConfig) invalid(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
}

// WithTTL sets how long the store keeps a lock without renewal (default 15s).
// Choose it above the p99 of your critical section plus network jitter if you
// switch renewal off; with renewal on it bounds how long a crashed holder
// blocks others. TTLs below the driver's minimum are rejected.
func WithTTL(d time.Duration) LockOption {
	return lockOption(func(c *lockConfig) {
		if d <= 0 {
			c.invalid("ttl %v must be positive", d)
			return
		}
		c.ttl = d
	})
}

// WithAutoRenew switches the heartbeat renewal on (the default) or off.
// With renewal off the lock expires TTL after it was taken unless Refresh is
// called; its Done channel closes when that local deadline passes.
func WithAutoRenew(on bool) LockOption {
	return lockOption(func(c *lockConfig) { c.autoRenew = on })
}

// WithRenewInterval sets how often a held lock is renewed (default TTL/3).
// It must be at most half the TTL, so a failed renewal leaves room for a
// retry; larger values are rejected.
func WithRenewInterval(d time.Duration) LockOption {
	return lockOption(func(c *lockConfig) {
		if d <= 0 {
			c.invalid("renew interval %v must be positive", d)
			return
		}
		c.renewInterval = d
	})
}

// WithBackoff sets the jittered exponential back-off Lock uses between
// attempts when the store cannot wake waiters (defaults 10ms and 500ms).
// With a store that wakes waiters, max is the longest wait between checks.
func WithBackoff(min, max time.Duration) LockOption {
	return lockOption(func(c *lockConfig) {
		if min <= 0 || max < min {
			c.invalid("backoff min %v, max %v: need 0 < min <= max", min, max)
			return
		}
		c.minBackoff, c.maxBackoff = min, max
	})
}

// WithOwner sets free-form metadata stored with the lock and shown by
// status (default "hostname:pid"). At most 256 bytes.
func WithOwner(owner string) LockOption {
	return lockOption(func(c *lockConfig) {
		if len(owner) > maxOwnerLen {
			c.invalid("owner is %d bytes, over the limit of %d", len(owner), maxOwnerLen)
			return
		}
		c.owner = owner
	})
}

const maxOwnerLen = 256

// WithLogger sets the logger for renewal failures and losses (default
// slog.Default()). Pass a logger with a discarding handler to silence it.
func WithLogger(l *slog.Logger) Option {
	return clientOption(func(c *clientConfig) { c.logger = l })
}

// WithMeterProvider records OpenTelemetry metrics (acquisitions, contention,
// losses, acquire latency, hold time) through mp. Default: no metrics.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return clientOption(func(c *clientConfig) { c.meter = mp })
}
