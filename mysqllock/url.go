package mysqllock

import (
	"context"
	"fmt"
	"net"
	"net/url"

	"github.com/go-sql-driver/mysql"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/leaserow"
)

// Scheme is the URL scheme this package registers with distlock.Open.
const Scheme = "mysql"

const defaultPort = "3306"

func init() {
	distlock.Register(Scheme, openURL)
}

func openURL(ctx context.Context, u *url.URL) (driver.Driver, error) {
	cfg, opts, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	return openConfig(ctx, cfg, &opts)
}

// ParseURL translates a store URL
//
//	mysql://user:password@host:port/database?param=value&...
//
// into go-sql-driver/mysql's configuration, the DSN
// "user:password@tcp(host:port)/database?param=value&...", and the Options
// of this package's own parameters:
//
//	table=NAME           the lock table
//	create_table=BOOL    create the table if missing (default true)
//	mode=lease|getlock   the lock mode (default lease)
//
// The user and password are percent-decoded; the port defaults to 3306 and
// the host to 127.0.0.1; the database is required. Every other parameter is
// the driver's (tls, timeout, readTimeout, charset, ...), checked by its DSN
// parser; a name it does not know is sent to the server as a session
// variable when connecting, which the server rejects if it does not know
// it. Errors never show the password.
func ParseURL(u *url.URL) (*mysql.Config, Options, error) {
	bad := func(format string, args ...any) (*mysql.Config, Options, error) {
		return nil, Options{}, fmt.Errorf("%w: mysql URL: "+format, append([]any{distlock.ErrInvalid}, args...)...)
	}
	if u.Scheme != Scheme {
		return bad("scheme %q is not %s", u.Scheme, Scheme)
	}
	if u.Opaque != "" {
		return bad("want mysql://user:password@host:port/database")
	}
	if u.Fragment != "" {
		return bad("fragment %q is not allowed", u.Fragment)
	}
	db, err := url.PathUnescape(u.EscapedPath())
	if err != nil {
		return bad("database name: %v", err)
	}
	if len(db) < 2 || db[0] != '/' {
		return bad("no database name: want mysql://user:password@host:port/database")
	}
	db = db[1:]
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	p, err := leaserow.TakeURLParams(q, "mysql", LeaseRow.String(), GetLock.String())
	if err != nil {
		return nil, Options{}, err
	}
	opts := Options{Table: p.Table, DisableCreateTable: p.DisableCreateTable, Mode: Mode(p.Mode)}

	// The driver's own parameters go through its DSN parser.
	dsn := "/"
	if len(q) > 0 {
		dsn += "?" + q.Encode()
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return bad("%v", err)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = defaultPort
	}
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(host, port)
	cfg.DBName = db
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	return cfg, opts, nil
}
