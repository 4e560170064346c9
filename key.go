package distlock

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/distlock/distlock/driver"
)

// MaxKeyLen is the longest key, in bytes, that every driver accepts.
const MaxKeyLen = 1024

// ValidateKey reports why key cannot name a lock, or nil. Keys are any
// non-empty UTF-8 string of at most MaxKeyLen bytes without NUL.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: key is empty", ErrInvalid)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: key is %d bytes, over the limit of %d", ErrInvalid, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: key is not valid UTF-8", ErrInvalid)
	}
	if i := strings.IndexByte(key, 0); i >= 0 {
		return fmt.Errorf("%w: key contains a NUL byte at offset %d", ErrInvalid, i)
	}
	return nil
}

// resolve applies opts over the client's defaults and checks the result
// against what the driver can honour.
func (c *Client) resolve(opts []LockOption) (lockConfig, error) {
	cfg := c.cfg.lock
	cfg.err = nil
	for _, o := range opts {
		if o != nil {
			o.applyLock(&cfg)
		}
	}
	if err := firstErr(c.cfg.lock.err, cfg.err); err != nil {
		return cfg, err
	}
	return cfg, checkTTL(&cfg, c.info)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func checkTTL(cfg *lockConfig, info driver.Info) error {
	if info.MinTTL > 0 && cfg.ttl < info.MinTTL {
		return fmt.Errorf("%w: ttl %v is below %s's minimum of %v", ErrInvalid, cfg.ttl, info.Name, info.MinTTL)
	}
	if g := info.TTLGranularity; g > 0 && cfg.ttl%g != 0 {
		cfg.ttl = (cfg.ttl/g + 1) * g
	}
	interval := cfg.renewInterval
	if interval == 0 {
		interval = cfg.ttl / 3
	}
	if cfg.autoRenew && interval*2 > cfg.ttl {
		return fmt.Errorf("%w: renew interval %v must be at most half the ttl %v", ErrInvalid, interval, cfg.ttl)
	}
	return nil
}

// interval is the renewal period: WithRenewInterval's, else TTL/3.
func (cfg *lockConfig) interval() time.Duration {
	if cfg.renewInterval > 0 {
		return cfg.renewInterval
	}
	return cfg.ttl / 3
}

// newToken returns 128 random bits, URL-safe base64 (22 characters).
func newToken() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// jitter returns a duration drawn uniformly from [d/2, d], so waiters that
// failed together do not retry together.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + mrand.N(d-d/2+1)
}

// The two clocks (this process's and the store's) may tick at slightly
// different rates, and stores keep expiry in whole milliseconds. The local
// view therefore leaves a margin on the safe side each way.
func driftMargin(ttl time.Duration) time.Duration { return ttl/100 + 2*time.Millisecond }

// lossLead is how much before the store can let another holder in the
// client ends a lock: the loss must be seen (Done closed, the work's context
// cancelled, the CLI's CMD signalled) first, even when the goroutine that
// ends it is slow to be scheduled. A tenth of the TTL, at most 50ms.
func lossLead(ttl time.Duration) time.Duration { return min(ttl/10, 50*time.Millisecond) }

// heldUntil is the local deadline of a lock granted or renewed by a request
// sent at sent: the earliest the store can expire it, less lossLead. The
// holder may rely on the lock until then.
func heldUntil(sent time.Time, ttl time.Duration) time.Time {
	return sent.Add(ttl - driftMargin(ttl) - lossLead(ttl))
}

// goneBy is the latest a lock can still be held by a request whose answer was
// observed, or given up on, at seen (its connection closed then, so it cannot
// have run later): the store has expired it by then.
func goneBy(seen time.Time, ttl time.Duration) time.Time {
	return seen.Add(ttl + driftMargin(ttl))
}
