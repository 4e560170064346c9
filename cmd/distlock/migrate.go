package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/leaserow"
	"github.com/distlock/distlock/mysqllock"
	"github.com/distlock/distlock/pglock"
)

// migrate is "distlock migrate": it creates the lock table of an SQL store
// (CREATE TABLE IF NOT EXISTS, so running it again is harmless), or with
// --print writes the statements on stdout without connecting, for teams
// that manage their schema themselves.
func (c *cli) migrate(ctx context.Context, args []string) int {
	var (
		store string
		print bool
	)
	fs := migrateFlags(&store, &print)
	fs.SetOutput(c.stderr)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return c.usageError("migrate", "unexpected argument %q", fs.Arg(0))
	}
	storeOK := given(fs, "store")
	storeURL, err := chooseStore(store, storeOK, c.getenv)
	if err != nil {
		c.errorf("%v", err)
		return exitUsage
	}
	u, err := url.Parse(storeURL)
	if err != nil {
		return c.usageError("migrate", "malformed store URL %s", distlock.RedactURL(storeURL))
	}
	table, stmts, err := schemaOf(u)
	if err != nil {
		return c.usageError("migrate", "%s", trimPrefix(err))
	}
	if print {
		for _, s := range stmts {
			fmt.Fprintf(c.stdout, "%s;\n", s)
		}
		return exitOK
	}
	// Opening with create_table=true creates the table and checks its
	// columns, exactly as a Client would.
	q := u.Query()
	q.Set("create_table", "true")
	u.RawQuery = q.Encode()
	client, err := distlock.Open(ctx, u.String(), distlock.WithLogger(c.logger()))
	if err != nil {
		c.errorf("%s", trimPrefix(err))
		return errorCode(err)
	}
	c.closeClient(client)
	fmt.Fprintf(c.stdout, "table %s is ready in %s\n", table, distlock.RedactURL(storeURL))
	return exitOK
}

// schemaOf returns the lock table named by an SQL store URL and the
// statements that create it, as the driver of the URL's scheme runs them.
func schemaOf(u *url.URL) (string, []string, error) {
	var (
		table string
		d     *leaserow.Dialect
	)
	switch strings.ToLower(u.Scheme) {
	case "sqlite":
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return "", nil, fmt.Errorf("%w: sqlite URL: query: %v", distlock.ErrInvalid, err)
		}
		table = leaserow.DefaultTable
		if t := q.Get("table"); t != "" {
			table = t
		}
		d = leaserow.SQLite
	case pglock.Scheme, pglock.SchemeLong:
		_, opts, err := pglock.ParseURL(u)
		if err != nil {
			return "", nil, err
		}
		table, d = opts.Table, leaserow.Postgres
		if table == "" {
			table = pglock.DefaultTable
			if opts.Mode == pglock.Advisory {
				table = pglock.DefaultSessionTable
			}
		}
	case mysqllock.Scheme:
		_, opts, err := mysqllock.ParseURL(u)
		if err != nil {
			return "", nil, err
		}
		table, d = opts.Table, leaserow.MySQL
		if table == "" {
			table = mysqllock.DefaultTable
			if opts.Mode == mysqllock.GetLock {
				table = mysqllock.DefaultSessionTable
			}
		}
	default:
		return "", nil, fmt.Errorf("%w: store %q keeps no SQL schema: migrate is for sqlite, postgres and mysql stores", distlock.ErrInvalid, u.Scheme)
	}
	if err := leaserow.ValidateTable(table); err != nil {
		return "", nil, err
	}
	return table, d.Schema(table), nil
}

func migrateFlags(store *string, print *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.StringVar(store, "store", "", "store `URL` (default $DISTLOCK_STORE, else the SQLite file in the state directory)")
	fs.BoolVar(print, "print", false, "print the SQL on stdout instead of running it")
	return fs
}

func writeMigrateUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: distlock migrate [--store URL] [--print]

Creates the lock table of an SQL store (sqlite, postgres, mysql) if it does
not exist, and checks its columns: the same CREATE TABLE IF NOT EXISTS a
Client runs on first use unless the URL says create_table=false. The table
is the URL's table parameter (default distlock_locks, or
distlock_session_locks with mode=advisory or mode=getlock). With --print it
writes the statements on stdout instead, without connecting, for teams
that manage their schema themselves.

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}
