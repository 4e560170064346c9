package leaserow

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/distlock/distlock"
)

func TestTakeURLParams(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  URLParams
		rest  string
		err   string // in the error; "" means none
	}{
		{"", URLParams{}, "", ""},
		{"table=locks&create_table=false&mode=advisory&sslmode=off", URLParams{Table: "locks", DisableCreateTable: true, Mode: 1}, "sslmode=off", ""},
		{"mode=lease&create_table=1", URLParams{}, "", ""},
		{"table=a&table=b", URLParams{}, "", "parameter table is given 2 times"},
		{"mode=lease&mode=lease", URLParams{}, "", "parameter mode is given 2 times"},
		{"mode=session", URLParams{}, "", `mode="session": want lease or advisory`},
		{"table=bad-name", URLParams{}, "", "table name"},
		{"table=", URLParams{}, "", "table name"},
		{"create_table=maybe", URLParams{}, "", `create_table="maybe": want true or false`},
	} {
		q, _ := url.ParseQuery(tc.query)
		p, err := TakeURLParams(q, "postgres", "lease", "advisory")
		if tc.err != "" {
			if !errors.Is(err, distlock.ErrInvalid) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "postgres URL") {
				t.Errorf("%q: error %v, want ErrInvalid naming the postgres URL and %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil || p != tc.want || q.Encode() != tc.rest {
			t.Errorf("%q = %+v, %v, rest %q; want %+v, rest %q", tc.query, p, err, q.Encode(), tc.want, tc.rest)
		}
	}
	// Without modes, mode is not this package's: it stays for the driver.
	q, _ := url.ParseQuery("mode=x&table=t")
	if p, err := TakeURLParams(q, "sqlite"); err != nil || p.Table != "t" || q.Encode() != "mode=x" {
		t.Errorf("without modes: %+v, %v, rest %q", p, err, q.Encode())
	}
}
