package sqlitelock

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/leaserow"
)

// Scheme is the URL scheme this package registers with distlock.Open.
const Scheme = "sqlite"

func init() {
	distlock.Register(Scheme, openURL)
}

func openURL(ctx context.Context, u *url.URL) (driver.Driver, error) {
	path, opts, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return OpenDriver(ctx, path, &opts)
}

// urlForms is how every URL error ends: the forms that work.
const urlForms = "use sqlite:///absolute/path/locks.db or sqlite:relative/path/locks.db"

// The query parameters a sqlite URL accepts.
const paramBusyTimeout = "busy_timeout"

var knownParams = []string{paramBusyTimeout, leaserow.ParamCreateTable, leaserow.ParamTable}

// parseURL reads the database path and options of a sqlite URL:
//
//	sqlite:///abs/path/locks.db   (also sqlite://localhost/abs/path/locks.db)
//	sqlite:relative/path/locks.db
//
// with the query parameters table, busy_timeout and create_table.
func parseURL(u *url.URL) (string, Options, error) {
	var opts Options
	bad := func(format string, args ...any) (string, Options, error) {
		return "", Options{}, fmt.Errorf("%w: sqlite URL: "+format, append([]any{distlock.ErrInvalid}, args...)...)
	}
	var path string
	switch {
	case u.Opaque != "":
		p, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return bad("path %q: %v", u.Opaque, err)
		}
		path = p
	case u.Host != "" && u.Host != "localhost":
		return bad("host %q is not allowed: the database is a local file (%s)", u.Host, urlForms)
	default:
		path = u.Path
		if runtime.GOOS == "windows" && len(path) >= 3 && path[0] == '/' && path[2] == ':' {
			path = path[1:] // sqlite:///C:/dir/locks.db
		}
	}
	switch {
	case u.User != nil:
		return bad("user information is not allowed (%s)", urlForms)
	case u.Fragment != "" || u.RawFragment != "":
		return bad("fragment %q is not allowed: escape # in a path as %%23 (%s)", u.Fragment, urlForms)
	case path == "":
		return bad("no database path (%s)", urlForms)
	case strings.HasSuffix(path, "/"):
		return bad("path %q names a directory, not a database file (%s)", path, urlForms)
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	var unknown []string
	for name, vals := range q {
		if !slices.Contains(knownParams, name) {
			unknown = append(unknown, name)
			continue
		}
		if len(vals) > 1 {
			return bad("parameter %s is given %d times", name, len(vals))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return bad("unknown parameter(s) %s (known: %s)", strings.Join(unknown, ", "), strings.Join(knownParams, ", "))
	}
	p, err := leaserow.TakeURLParams(q, "sqlite")
	if err != nil {
		return "", Options{}, err
	}
	opts.Table, opts.DisableCreateTable = p.Table, p.DisableCreateTable
	if q.Has(paramBusyTimeout) {
		v := q.Get(paramBusyTimeout)
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return bad("busy_timeout=%q: want a positive duration such as 5s or 500ms", v)
		}
		opts.BusyTimeout = d
	}
	return path, opts, nil
}
