package once_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/once"
)

func TestOpenURLErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		url  string
		want string // in the error; "" means Open succeeds
	}{
		{"", "scheme"},
		{"redis://localhost:6379", `scheme "redis"`},
		{"://nope", "malformed"},
		{"sqlite:", "no database file"},
		{"sqlite:///", "no database file"},
		{"sqlite://otherhost/x.db", `host "otherhost"`},
		{"sqlite://user@/x.db", "user information"},
		{"sqlite:" + dir + "/a.db?cache=shared", "unknown parameter(s) cache"},
		{"sqlite:" + dir + "/a.db?busy_timeout=soon", "busy_timeout"},
		{"sqlite:" + dir + "/a.db?busy_timeout=-1s", "busy_timeout"},
		{"sqlite:" + dir + "/a.db?create_table=maybe", "create_table"},
		{"sqlite:" + dir + "/a.db?table=bad-name", "table name"},
		{"sqlite:" + dir + "/a.db?table=a&table=b", "given 2 times"},
		{"postgres://u:hunter2@127.0.0.1:1/db?busy_timeout=1s", "sqlite parameter"},
		{"mysql://u:hunter2@127.0.0.1:1/db?busy_timeout=1s", "sqlite parameter"},
		{"mysql://u:hunter2@127.0.0.1:1/a/b", "slash"},
		{"mysql://u:hunter2@127.0.0.1:1/db?nosuchdriverparam=%zz", "query"},
		{"sqlite:" + dir + "/ok.db?table=once_ok&create_table=true&busy_timeout=2s", ""},
		{"sqlite://localhost" + filepath.ToSlash(dir) + "/ok2.db", ""},
	} {
		g, err := once.Open(t.Context(), tc.url)
		if tc.want == "" {
			if err != nil {
				t.Errorf("Open(%q) = %v", tc.url, err)
			} else {
				g.Close()
			}
			continue
		}
		if err == nil {
			g.Close()
			t.Errorf("Open(%q) succeeded, want an error saying %q", tc.url, tc.want)
			continue
		}
		if !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v, want ErrInvalid saying %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error shows the password: %v", tc.url, err)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	// Nothing listens on port 1: Open checks the table, so it fails.
	for _, u := range []string{"postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2", "mysql://u:hunter2@127.0.0.1:1/db?timeout=2s"} {
		g, err := once.Open(t.Context(), u)
		if err == nil {
			g.Close()
			t.Fatalf("Open(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error shows the password: %v", u, err)
		}
	}
}
