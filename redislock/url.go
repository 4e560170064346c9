package redislock

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/rediswire"
)

// The URL schemes this package registers with distlock.Open.
const (
	Scheme    = "redis"
	SchemeTLS = "rediss"
)

// paramPrefix is the one query parameter this package reads itself; every
// other one goes to go-redis.
const paramPrefix = "prefix"

func init() {
	distlock.Register(Scheme, openURL)
	distlock.Register(SchemeTLS, openURL)
}

func openURL(ctx context.Context, u *url.URL) (driver.Driver, error) {
	return OpenDriver(ctx, u.String())
}

// parseURL splits a redis:// or rediss:// URL into go-redis options and ours.
// Errors wrap distlock.ErrInvalid and never show the password.
func parseURL(raw string) (*redis.Options, Options, error) {
	bad := func(format string, args ...any) (*redis.Options, Options, error) {
		msg := distlock.RedactURL(fmt.Sprintf(format, args...))
		return nil, Options{}, fmt.Errorf("%w: redis URL %s: %s", distlock.ErrInvalid, distlock.RedactURL(raw), msg)
	}
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return bad("%v", err)
	}
	if s := strings.ToLower(u.Scheme); s != Scheme && s != SchemeTLS {
		return bad("scheme %q: want redis:// or rediss://", u.Scheme)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	var o Options
	if vals, ok := q[paramPrefix]; ok {
		if len(vals) > 1 {
			return bad("parameter prefix is given %d times", len(vals))
		}
		o.Prefix = vals[0]
		q.Del(paramPrefix)
	}
	if err := rediswire.TakeContextTimeout(q); err != nil {
		return bad("%v", err)
	}
	u.RawQuery = q.Encode()
	opt, err := redis.ParseURL(u.String())
	if err != nil {
		msg := err.Error()
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
		return bad("%s", msg)
	}
	// A driver's calls must return by their ctx's deadline, not by
	// go-redis's own read_timeout (3s by default).
	opt.ContextTimeoutEnabled = true
	return opt, o, nil
}
