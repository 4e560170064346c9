package distlock

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/redact"
)

// OpenFunc opens a driver for a parsed store URL. Driver packages register one
// per scheme in their init function.
type OpenFunc func(ctx context.Context, u *url.URL) (driver.Driver, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// driverPackages names the package that registers each scheme, so an Open of
// a known but unimported scheme says what to import.
var driverPackages = map[string]string{
	"sqlite":     "sqlitelock",
	"redis":      "redislock",
	"rediss":     "redislock",
	"redlock":    "redlock",
	"etcd":       "etcdlock",
	"postgres":   "pglock",
	"postgresql": "pglock",
	"mysql":      "mysqllock",
}

// Register makes a driver available to Open under a URL scheme. It panics if
// the scheme is registered twice or open is nil, as database/sql.Register does.
func Register(scheme string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if open == nil {
		panic("distlock: Register of a nil OpenFunc for scheme " + scheme)
	}
	if _, dup := registry[scheme]; dup {
		panic("distlock: Register called twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s := make([]string, 0, len(registry))
	for k := range registry {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Open connects to the store named by storeURL; its scheme picks the driver,
// which must have been registered by importing its package, for example
//
//	import _ "github.com/distlock/distlock/sqlitelock"
//	client, err := distlock.Open(ctx, "sqlite:///var/lib/app/locks.db")
//
// A malformed URL or an unknown scheme is an error wrapping ErrInvalid; a
// store that cannot be reached wraps ErrUnavailable. Passwords in the URL
// never appear in errors.
func Open(ctx context.Context, storeURL string, opts ...Option) (*Client, error) {
	u, err := parseStoreURL(storeURL)
	if err != nil {
		return nil, &Error{Op: "open", Err: err}
	}
	registryMu.RLock()
	open := registry[u.Scheme]
	registryMu.RUnlock()
	if open == nil {
		return nil, &Error{Op: "open", Err: unknownScheme(u.Scheme)}
	}
	drv, err := open(ctx, u)
	if err != nil {
		return nil, &Error{Op: "open", Backend: u.Scheme, Err: redact.Error(err, u)}
	}
	c, err := NewClient(drv, opts...)
	if err != nil {
		drv.Close()
		return nil, err
	}
	return c, nil
}

func parseStoreURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: store URL is empty (known schemes: %s)", ErrInvalid, knownSchemes())
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error repeats the whole URL, password included: say it again
		// with the URL redacted.
		msg := err.Error()
		if ue, ok := err.(*url.Error); ok {
			msg = ue.Err.Error()
		}
		return nil, fmt.Errorf("%w: malformed store URL %s: %s", ErrInvalid, RedactURL(s), RedactURL(msg))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: store URL %s has no scheme (known schemes: %s)", ErrInvalid, RedactURL(s), knownSchemes())
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}

func unknownScheme(scheme string) error {
	if pkg, ok := driverPackages[scheme]; ok {
		return fmt.Errorf("%w: no driver registered for scheme %q: import github.com/distlock/distlock/%s (registered: %s)",
			ErrInvalid, scheme, pkg, knownSchemes())
	}
	return fmt.Errorf("%w: unknown store scheme %q (known schemes: %s)", ErrInvalid, scheme, knownSchemes())
}

func knownSchemes() string {
	s := Schemes()
	if len(s) == 0 {
		return "none registered"
	}
	return strings.Join(s, ", ")
}

// RedactURL returns s with the password of any URL in it replaced by
// "xxxxx", whether or not the URL parses (a password with a space or '^'
// in it, which net/url rejects, is hidden too), and without what net/url's
// parse errors quote of a URL. Where a URL's user information is ambiguous
// (an unescaped '/' or '@' in the password), more is hidden rather than
// less.
func RedactURL(s string) string { return redact.URL(s) }
