package pglock_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/pglock"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		wantConn string // "" when an error is wanted
		want     pglock.Options
	}{
		{"postgres://u:p@h:5432/db", "postgres://u:p@h:5432/db", pglock.Options{}},
		{"postgresql://h/db?sslmode=disable", "postgresql://h/db?sslmode=disable", pglock.Options{}},
		{"postgres://h/db?table=locks&create_table=false", "postgres://h/db", pglock.Options{Table: "locks", DisableCreateTable: true}},
		{"postgres://h/db?table=s.locks&sslmode=disable", "postgres://h/db?sslmode=disable", pglock.Options{Table: "s.locks"}},
		{"postgres://h/db?mode=advisory", "postgres://h/db", pglock.Options{Mode: pglock.Advisory}},
		{"postgres://h/db?mode=lease&create_table=1", "postgres://h/db", pglock.Options{}},
		{"postgres://h/db?mode=session", "", pglock.Options{}},
		{"postgres://h/db?table=a;b", "", pglock.Options{}},
		{"postgres://h/db?table=a-b", "", pglock.Options{}},
		{"postgres://h/db?table=x&table=y", "", pglock.Options{}},
		{"postgres://h/db?create_table=maybe", "", pglock.Options{}},
		{"mysql://h/db", "", pglock.Options{}},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		conn, opts, err := pglock.ParseURL(u)
		if tc.wantConn == "" {
			if err == nil || !errors.Is(err, distlock.ErrInvalid) {
				t.Errorf("ParseURL(%q) = %q, %v; want an error wrapping ErrInvalid", tc.url, conn, err)
			}
			continue
		}
		if err != nil || conn != tc.wantConn || opts != tc.want {
			t.Errorf("ParseURL(%q) = %q, %+v, %v; want %q, %+v", tc.url, conn, opts, err, tc.wantConn, tc.want)
		}
	}
}

// TestOpenURLErrors checks that distlock.Open reports bad URLs as invalid,
// an unreachable server as unavailable, and never shows the password.
func TestOpenURLErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=2", distlock.ErrUnavailable},
		{"postgres://u:s3cret@127.0.0.1:1/db?mode=bogus", distlock.ErrInvalid},
		{"postgresql://u:s3cret@127.0.0.1:1/db?table=no;pe", distlock.ErrInvalid},
		{"postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=nope", distlock.ErrInvalid},
	} {
		c, err := distlock.Open(ctx, tc.url)
		if err == nil {
			c.Close()
			t.Errorf("Open(%q) succeeded", tc.url)
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("Open(%q) = %v; want an error wrapping %v", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): the password shows in %q", tc.url, err)
		}
	}
}
