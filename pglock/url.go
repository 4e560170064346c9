package pglock

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/leaserow"
)

// The URL schemes this package registers with distlock.Open.
const (
	Scheme      = "postgres"
	SchemeLong  = "postgresql"
	paramTable  = "table"
	paramCreate = "create_table"
	paramMode   = "mode"
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
	var opts Options
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
	for _, name := range []string{paramTable, paramCreate, paramMode} {
		if len(q[name]) > 1 {
			return bad("parameter %s is given %d times", name, len(q[name]))
		}
	}
	if v := q.Get(paramMode); q.Has(paramMode) {
		switch v {
		case "lease":
			opts.Mode = LeaseRow
		case "advisory":
			opts.Mode = Advisory
		default:
			return bad("mode=%q: want lease or advisory", v)
		}
	}
	if q.Has(paramTable) {
		opts.Table = q.Get(paramTable)
		if err := leaserow.ValidateTable(opts.Table); err != nil {
			return "", Options{}, fmt.Errorf("postgres URL: %w", err)
		}
	}
	if v := q.Get(paramCreate); q.Has(paramCreate) {
		create, err := strconv.ParseBool(v)
		if err != nil {
			return bad("create_table=%q: want true or false", v)
		}
		opts.DisableCreateTable = !create
	}
	q.Del(paramTable)
	q.Del(paramCreate)
	q.Del(paramMode)
	c := *u
	c.RawQuery = q.Encode()
	return c.String(), opts, nil
}
