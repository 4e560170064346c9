package pglock

import (
	"context"
	"fmt"
	"net/url"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/leaserow"
)

// The URL schemes this package registers with distlock.Open.
const (
	Scheme     = "postgres"
	SchemeLong = "postgresql"
)

func init() {
	distlock.Register(Scheme, openURL)
	distlock.Register(SchemeLong, openURL)
}

func openURL(ctx context.Context, u *url.URL) (driver.Driver, error) {
	conn, opts, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	return OpenDriver(ctx, conn, &opts)
}

// ParseURL splits a postgres:// or postgresql:// store URL into the
// connection string for pgx (the URL without this package's parameters) and
// the Options those parameters set:
//
//	table=NAME          the lock table
//	create_table=BOOL   create the table if missing (default true)
//	mode=lease|advisory the lock mode (default lease)
//
// Every other parameter is pgx's (sslmode, connect_timeout, pool_max_conns,
// application_name, ...); pgx rejects what it does not know when it
// connects, or passes it to the server as a run-time setting, which the
// server rejects if it does not know it. Errors never show the password.
func ParseURL(u *url.URL) (string, Options, error) {
	bad := func(format string, args ...any) (string, Options, error) {
		return "", Options{}, fmt.Errorf("%w: postgres URL: "+format, append([]any{distlock.ErrInvalid}, args...)...)
	}
	if u.Scheme != Scheme && u.Scheme != SchemeLong {
		return bad("scheme %q is not %s or %s", u.Scheme, Scheme, SchemeLong)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	p, err := leaserow.TakeURLParams(q, "postgres", LeaseRow.String(), Advisory.String())
	if err != nil {
		return "", Options{}, err
	}
	opts := Options{Table: p.Table, DisableCreateTable: p.DisableCreateTable, Mode: Mode(p.Mode)}
	c := *u
	c.RawQuery = q.Encode()
	return c.String(), opts, nil
}
