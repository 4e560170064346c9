package mysqllock_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/mysqllock"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		wantDSN string // "" when an error is wanted
		want    mysqllock.Options
	}{
		{"mysql://u:p@h:3307/db", "u:p@tcp(h:3307)/db", mysqllock.Options{}},
		{"mysql://u@h/db", "u@tcp(h:3306)/db", mysqllock.Options{}},
		{"mysql://h/db", "tcp(h:3306)/db", mysqllock.Options{}},
		{"mysql:///db", "tcp(127.0.0.1:3306)/db", mysqllock.Options{}},
		{"mysql://u:p%40ss%2Fw@[::1]:3306/db", "u:p@ss/w@tcp([::1]:3306)/db", mysqllock.Options{}},
		{"mysql://h/db?tls=skip-verify&timeout=5s", "tcp(h:3306)/db?timeout=5s&tls=skip-verify", mysqllock.Options{}},
		{"mysql://h/db?table=locks&create_table=false", "tcp(h:3306)/db", mysqllock.Options{Table: "locks", DisableCreateTable: true}},
		{"mysql://h/db?mode=getlock", "tcp(h:3306)/db", mysqllock.Options{Mode: mysqllock.GetLock}},
		{"mysql://h/db?mode=lease", "tcp(h:3306)/db", mysqllock.Options{}},
		{"mysql://h/db?mode=advisory", "", mysqllock.Options{}},
		{"mysql://h/", "", mysqllock.Options{}},
		{"mysql://h", "", mysqllock.Options{}},
		{"mysql://h/db?table=a;b", "", mysqllock.Options{}},
		{"mysql://h/db?table=x&table=y", "", mysqllock.Options{}},
		{"mysql://h/db?create_table=maybe", "", mysqllock.Options{}},
		{"mysql://h/db?timeout=forever", "", mysqllock.Options{}},
		{"mysql://h/db#frag", "", mysqllock.Options{}},
		{"mysql:h/db", "", mysqllock.Options{}},
		{"postgres://h/db", "", mysqllock.Options{}},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		cfg, opts, err := mysqllock.ParseURL(u)
		if tc.wantDSN == "" {
			if err == nil || !errors.Is(err, distlock.ErrInvalid) {
				t.Errorf("ParseURL(%q) = %v; want an error wrapping ErrInvalid", tc.url, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if dsn := cfg.FormatDSN(); dsn != tc.wantDSN || opts != tc.want {
			t.Errorf("ParseURL(%q) = %q, %+v; want %q, %+v", tc.url, dsn, opts, tc.wantDSN, tc.want)
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
		{"mysql://u:s3cret@127.0.0.1:1/db?timeout=2s", distlock.ErrUnavailable},
		{"mysql://u:s3cret@127.0.0.1:1/db?mode=bogus", distlock.ErrInvalid},
		{"mysql://u:s3cret@127.0.0.1:1/db?table=no;pe", distlock.ErrInvalid},
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
