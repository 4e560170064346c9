package sqlitelock

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url      string
		wantPath string
		wantOpts Options
		wantErr  string // a substring of the error; "" for none
	}{
		{url: "sqlite:///var/lib/app/locks.db", wantPath: "/var/lib/app/locks.db"},
		{url: "sqlite://localhost/var/lib/app/locks.db", wantPath: "/var/lib/app/locks.db"},
		{url: "sqlite:/var/lib/app/locks.db", wantPath: "/var/lib/app/locks.db"},
		{url: "sqlite:locks.db", wantPath: "locks.db"},
		{url: "sqlite:state/locks.db", wantPath: "state/locks.db"},
		{url: "sqlite:../up/locks.db", wantPath: "../up/locks.db"},
		{url: "sqlite:///tmp/with%20space/a%3Fb%23c.db", wantPath: "/tmp/with space/a?b#c.db"},
		{url: "sqlite:rel%20ative.db", wantPath: "rel ative.db"},
		{url: "sqlite:///x.db?table=my_locks", wantPath: "/x.db", wantOpts: Options{Table: "my_locks"}},
		{url: "sqlite:///x.db?table=main.my_locks", wantPath: "/x.db", wantOpts: Options{Table: "main.my_locks"}},
		{url: "sqlite:///x.db?busy_timeout=250ms", wantPath: "/x.db", wantOpts: Options{BusyTimeout: 250 * time.Millisecond}},
		{url: "sqlite:///x.db?create_table=false", wantPath: "/x.db", wantOpts: Options{DisableCreateTable: true}},
		{url: "sqlite:///x.db?create_table=true", wantPath: "/x.db"},
		{url: "sqlite:x.db?table=t&busy_timeout=1m&create_table=0", wantPath: "x.db",
			wantOpts: Options{Table: "t", BusyTimeout: time.Minute, DisableCreateTable: true}},

		{url: "sqlite://relative/locks.db", wantErr: `host "relative" is not allowed`},
		{url: "sqlite://db.example.com/var/locks.db", wantErr: `host "db.example.com" is not allowed`},
		{url: "sqlite://user:pw@localhost/x.db", wantErr: "user information is not allowed"},
		{url: "sqlite:", wantErr: "no database path"},
		{url: "sqlite://", wantErr: "no database path"},
		{url: "sqlite://localhost", wantErr: "no database path"},
		{url: "sqlite:///", wantErr: "names a directory"},
		{url: "sqlite:///var/lib/", wantErr: "names a directory"},
		{url: "sqlite:///x.db#frag", wantErr: "fragment"},
		{url: "sqlite:///x.db?tabel=x", wantErr: "unknown parameter(s) tabel"},
		{url: "sqlite:///x.db?mode=memory&cache=shared", wantErr: "unknown parameter(s) cache, mode"},
		{url: "sqlite:///x.db?_pragma=journal_mode(DELETE)", wantErr: "unknown parameter(s) _pragma"},
		{url: "sqlite:///x.db?table=a&table=b", wantErr: "table is given 2 times"},
		{url: "sqlite:///x.db?table=", wantErr: "not a plain SQL identifier"},
		{url: "sqlite:///x.db?table=x;drop", wantErr: "query"},
		{url: "sqlite:///x.db?table=x%3Bdrop", wantErr: "not a plain SQL identifier"},
		{url: "sqlite:///x.db?table=1x", wantErr: "not a plain SQL identifier"},
		{url: "sqlite:///x.db?busy_timeout=5000", wantErr: "busy_timeout"},
		{url: "sqlite:///x.db?busy_timeout=0s", wantErr: "busy_timeout"},
		{url: "sqlite:///x.db?busy_timeout=-1s", wantErr: "busy_timeout"},
		{url: "sqlite:///x.db?create_table=maybe", wantErr: "create_table"},
		{url: "sqlite:///x.db?table=%zz", wantErr: "query"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatalf("url.Parse: %v", err)
			}
			path, opts, err := parseURL(u)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("parseURL = %q, %+v; want an error containing %q", path, opts, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				if !errors.Is(err, distlock.ErrInvalid) {
					t.Errorf("error %q does not wrap ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			if path != tc.wantPath || opts != tc.wantOpts {
				t.Errorf("parseURL = %q, %+v; want %q, %+v", path, opts, tc.wantPath, tc.wantOpts)
			}
		})
	}
}

func TestURLErrorsNameTheForms(t *testing.T) {
	u, _ := url.Parse("sqlite://tmp/locks.db")
	_, _, err := parseURL(u)
	if err == nil || !strings.Contains(err.Error(), "sqlite:///absolute/path/locks.db") || !strings.Contains(err.Error(), "sqlite:relative/path/locks.db") {
		t.Errorf("error does not name the correct forms: %v", err)
	}
}
