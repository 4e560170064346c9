package once

import (
	"fmt"
	"os"
	"time"

	"github.com/distlock/distlock/internal/leaserow"
)

// Defaults applied when no option says otherwise.
const (
	// DefaultTTL is a claim's lease: how long a claimer that died blocks the
	// key before another may take it over. A live claimer renews it.
	DefaultTTL = 30 * time.Second
	// MinTTL is the shortest lease accepted.
	MinTTL = 100 * time.Millisecond
	// MaxResultLen is the largest result, in bytes, Complete stores.
	MaxResultLen = 64 << 10
	// MaxOwnerLen is the longest owner string, in bytes.
	MaxOwnerLen = 256
)

// Option configures a Guard (New, Open).
type Option interface {
	applyGuard(*guardConfig)
}

// ClaimOption configures one claim (Claim, Do) or, given to New or Open,
// the Guard's default for every claim.
type ClaimOption interface {
	Option
	applyClaim(*claimConfig)
}

type claimConfig struct {
	ttl       time.Duration
	owner     string
	autoRenew bool
	err       error
}

type guardConfig struct {
	claim       claimConfig
	table       string
	createTable bool
	err         error
}

func defaultGuardConfig() guardConfig {
	return guardConfig{
		claim:       claimConfig{ttl: DefaultTTL, owner: defaultOwner(), autoRenew: true},
		table:       DefaultTable,
		createTable: true,
	}
}

// defaultOwner is "hostname:pid".
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	owner := fmt.Sprintf("%s:%d", host, os.Getpid())
	if len(owner) > MaxOwnerLen {
		owner = owner[len(owner)-MaxOwnerLen:] // keep the pid
	}
	return owner
}

func (c *claimConfig) invalid(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{errInvalid}, args...)...)
	}
}

type claimOption func(*claimConfig)

func (f claimOption) applyClaim(c *claimConfig) { f(c) }
func (f claimOption) applyGuard(c *guardConfig) { f(&c.claim) }

type guardOption func(*guardConfig)

func (f guardOption) applyGuard(c *guardConfig) { f(c) }

// WithTTL sets a claim's lease (default 30s, at least 100ms): while the
// claimer lives it is renewed every TTL/3; when the claimer dies, the key is
// blocked for at most this long before another claimer may take it over.
func WithTTL(d time.Duration) ClaimOption {
	return claimOption(func(c *claimConfig) {
		if d < MinTTL {
			c.invalid("ttl %v is below the minimum of %v", d, MinTTL)
			return
		}
		c.ttl = d
	})
}

// WithOwner sets free-form metadata stored with the claim and reported to
// other claimers in InProgressError and DoneError (default "hostname:pid").
// At most MaxOwnerLen bytes.
func WithOwner(owner string) ClaimOption {
	return claimOption(func(c *claimConfig) {
		if len(owner) > MaxOwnerLen {
			c.invalid("owner is %d bytes, over the limit of %d", len(owner), MaxOwnerLen)
			return
		}
		c.owner = owner
	})
}

// WithAutoRenew switches the claim's heartbeat on (the default) or off.
// With it off, the lease runs out TTL after the claim (or the last Extend)
// and the claim's Done channel closes then.
func WithAutoRenew(on bool) ClaimOption {
	return claimOption(func(c *claimConfig) { c.autoRenew = on })
}

// WithTable sets the table's name (default distlock_once): a plain SQL
// identifier, optionally schema-qualified.
func WithTable(name string) Option {
	return guardOption(func(c *guardConfig) {
		if err := leaserow.ValidateTable(name); err != nil && c.err == nil {
			c.err = err
		}
		c.table = name
	})
}

// WithCreateTable says whether the Guard creates its table (CREATE TABLE IF
// NOT EXISTS) on first use. Default true. With false, the table must exist
// (see the package documentation for its schema); the first use checks it.
func WithCreateTable(create bool) Option {
	return guardOption(func(c *guardConfig) { c.createTable = create })
}
