package once

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/leaserow"
	"github.com/distlock/distlock/internal/redact"
)

// The query parameters every URL accepts, besides leaserow's table and
// create_table (WithTable, WithCreateTable); they become Options (and come
// before opts given to Open).
const paramBusyTimeout = "busy_timeout" // sqlite only

// Open opens the database named by storeURL and returns a Guard over it,
// initialised (table created if allowed, and checked). Close closes the
// database. The forms:
//
//	sqlite:///abs/path/once.db   sqlite:relative/path/once.db
//	    parameters: table, create_table, busy_timeout (default 5s)
//	postgres://user:pass@host:5432/db?sslmode=disable   (also postgresql://)
//	    parameters: table, create_table; every other parameter goes to pgx
//	    (sslmode, connect_timeout, application_name, ...)
//	mysql://user:pass@host:3306/db
//	    parameters: table, create_table; every other parameter goes to
//	    go-sql-driver/mysql as a DSN parameter (tls, timeout, ...)
//
// An unknown scheme or a malformed URL is an error wrapping
// distlock.ErrInvalid; passwords never appear in errors.
func Open(ctx context.Context, storeURL string, opts ...Option) (*Guard, error) {
	g, err := open(ctx, storeURL, opts)
	if err != nil {
		return nil, &distlock.Error{Op: "open", Backend: "once", Err: redact.ErrorOf(err, storeURL)}
	}
	return g, nil
}

func open(ctx context.Context, storeURL string, opts []Option) (*Guard, error) {
	u, err := url.Parse(storeURL)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed store URL %s", errInvalid, distlock.RedactURL(storeURL))
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: store URL query: %v", errInvalid, err)
	}
	ours, err := takeParams(q)
	if err != nil {
		return nil, err
	}
	u.RawQuery = q.Encode()
	var (
		db *sql.DB
		d  *dialect
	)
	switch strings.ToLower(u.Scheme) {
	case "sqlite":
		db, err = openSQLite(u, ours)
		d = sqliteDialect
	case "postgres", "postgresql":
		db, err = openPostgres(u, ours)
		d = postgresDialect
	case "mysql":
		db, err = openMySQL(u, ours)
		d = mysqlDialect
	default:
		return nil, fmt.Errorf("%w: store URL scheme %q: want sqlite, postgres, postgresql or mysql", errInvalid, u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	all := append(ours.opts, opts...)
	g, err := newGuard(db, d, true, all)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := g.Init(ctx); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

type urlParams struct {
	opts        []Option
	busyTimeout string
}

// takeParams removes this package's parameters from q.
func takeParams(q url.Values) (urlParams, error) {
	var p urlParams
	if len(q[paramBusyTimeout]) > 1 {
		return p, fmt.Errorf("%w: store URL parameter %s is given %d times", errInvalid, paramBusyTimeout, len(q[paramBusyTimeout]))
	}
	common, err := leaserow.TakeURLParams(q, "store")
	if err != nil {
		return p, err
	}
	if common.Table != "" {
		p.opts = append(p.opts, WithTable(common.Table))
	}
	if common.DisableCreateTable {
		p.opts = append(p.opts, WithCreateTable(false))
	}
	if q.Has(paramBusyTimeout) {
		p.busyTimeout = q.Get(paramBusyTimeout)
		if p.busyTimeout == "" {
			p.busyTimeout = "-"
		}
	}
	q.Del(paramBusyTimeout)
	return p, nil
}

// openSQLite opens a database file as sqlitelock does: WAL, a busy timeout,
// synchronous NORMAL.
func openSQLite(u *url.URL, p urlParams) (*sql.DB, error) {
	const forms = "use sqlite:///absolute/path/once.db or sqlite:relative/path/once.db"
	path := u.Path
	if u.Opaque != "" {
		var err error
		if path, err = url.PathUnescape(u.Opaque); err != nil {
			return nil, fmt.Errorf("%w: sqlite URL path %q: %v", errInvalid, u.Opaque, err)
		}
	}
	switch {
	case u.Host != "" && u.Host != "localhost":
		return nil, fmt.Errorf("%w: sqlite URL host %q is not allowed: the database is a local file (%s)", errInvalid, u.Host, forms)
	case u.User != nil:
		return nil, fmt.Errorf("%w: sqlite URL: user information is not allowed (%s)", errInvalid, forms)
	case path == "" || strings.HasSuffix(path, "/"):
		return nil, fmt.Errorf("%w: sqlite URL: no database file (%s)", errInvalid, forms)
	case strings.IndexByte(path, 0) >= 0:
		return nil, fmt.Errorf("%w: sqlite URL: path contains a NUL byte", errInvalid)
	}
	if len(u.Query()) > 0 {
		return nil, fmt.Errorf("%w: sqlite URL: unknown parameter(s) %s (known: %s, %s, %s)", errInvalid,
			strings.Join(sortedKeys(u.Query()), ", "), paramBusyTimeout, leaserow.ParamCreateTable, leaserow.ParamTable)
	}
	busy := 5 * time.Second
	if p.busyTimeout != "" {
		d, err := time.ParseDuration(p.busyTimeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: busy_timeout=%q: want a positive duration such as 5s", errInvalid, p.busyTimeout)
		}
		busy = d
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite path %q: %w", errInvalid, path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("%w: create the database's directory: %w", distlock.ErrUnavailable, err)
	}
	conn, err := sqlite.NewConnector(sqliteDSN(abs, busy))
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite path %q: %w", errInvalid, path, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	return db, nil
}

var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

func sqliteDSN(abs string, busy time.Duration) string {
	ms := max(int64((busy+time.Millisecond-1)/time.Millisecond), 1)
	return "file:" + uriPath.Replace(filepath.ToSlash(abs)) +
		"?_pragma=busy_timeout(" + strconv.FormatInt(ms, 10) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)"
}

func openPostgres(u *url.URL, p urlParams) (*sql.DB, error) {
	if p.busyTimeout != "" {
		return nil, fmt.Errorf("%w: busy_timeout is a sqlite parameter", errInvalid)
	}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("%w: postgres URL: %w", errInvalid, err)
	}
	return stdlib.OpenDB(*cfg), nil
}

func openMySQL(u *url.URL, p urlParams) (*sql.DB, error) {
	if p.busyTimeout != "" {
		return nil, fmt.Errorf("%w: busy_timeout is a sqlite parameter", errInvalid)
	}
	if u.Opaque != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: mysql URL: want mysql://user:password@host:3306/database", errInvalid)
	}
	host := u.Host
	if host == "" {
		host = "127.0.0.1:3306"
	} else if u.Port() == "" {
		host += ":3306"
	}
	db := strings.TrimPrefix(u.Path, "/")
	if strings.Contains(db, "/") {
		return nil, fmt.Errorf("%w: mysql URL: database name %q contains a slash", errInvalid, db)
	}
	dsn := "tcp(" + host + ")/" + db
	if u.RawQuery != "" {
		dsn += "?" + u.RawQuery
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: mysql URL: %w", errInvalid, err)
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: mysql URL: %w", errInvalid, err)
	}
	return sql.OpenDB(conn), nil
}

func sortedKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
