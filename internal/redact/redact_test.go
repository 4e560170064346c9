package redact

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"redis://:pw@h:1/0", "redis://:xxxxx@h:1/0"},
		{"postgres://u:pw@h/db?x=1", "postgres://u:xxxxx@h/db?x=1"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://u:a@b@h/db", "postgres://u:xxxxx@h/db"},
		{"sqlite:///tmp/x.db", "sqlite:///tmp/x.db"},
		{"sqlite:///tmp/a:b@c.db", "sqlite:///tmp/a:b@c.db"},
		{"redis://h:6379/0", "redis://h:6379/0"},
		// Passwords net/url rejects: found by hand.
		{"postgres://u:pa ss@h/db", "postgres://u:xxxxx@h/db"},
		{"mysql://u:pa^ss@h:3306/db", "mysql://u:xxxxx@h:3306/db"},
		{"postgres://u:pa/ss@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:pa#ss@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:pa?ss@h/db", "postgres://u:xxxxx@h/db"},
		{"etcd://u:p%zz@h:2379", "etcd://u:xxxxx@h:2379"},
		{"redis://u:\x01\x7f@h/0", "redis://u:xxxxx@h/0"},
		// Parses, but an '@' after the authority may end the password.
		{"postgres://u:HEADa@b/cTAIL@127.0.0.1/db", "postgres://u:xxxxx@127.0.0.1/db"},
		// In messages.
		{"bad postgres://u:pw@[::1 text", "bad postgres://u:xxxxx@[::1 text"},
		{"dial redis://u:p w@h:1/0: refused", "dial redis://u:xxxxx@h:1/0: refused"},
		{"a redis://:x@h and b mysql://u:y@h2/db", "a redis://:xxxxx@h2/db"},
		{"no URL: user:pw@host", "no URL: user:pw@host"},
		{"1http://u:p@h", "1http://u:xxxxx@h"},
		{"://u:p@h", "://u:xxxxx@h"},
		// What net/url quotes of a URL.
		{`invalid port ":pa" after host`, `invalid port after host`},
		{`invalid URL escape "%ss"`, `invalid URL escape`},
		{`invalid character " " in host name`, `invalid character in host name`},
	} {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	u, _ := url.Parse("postgres://app:s%2Fe+cr%40et@db/x")
	pw, _ := u.User.Password() // "s/e+cr@et"
	for _, msg := range []string{"dial " + pw, "url postgres://app:" + url.PathEscape(pw) + "@db", "q=" + url.QueryEscape(pw), "u=" + u.String()} {
		err := Error(errors.Join(io.EOF, errors.New(msg)), u)
		if got := err.Error(); strings.Contains(got, "cr@et") || strings.Contains(got, "cr%40et") || !strings.Contains(got, Mask) {
			t.Errorf("Error(%q) = %q: the password shows", msg, got)
		}
		if !errors.Is(err, io.EOF) {
			t.Errorf("Error(%q) dropped the chain", msg)
		}
	}
	plain := errors.New("no secret")
	if got := Error(plain, &url.URL{Scheme: "redis", Host: "h"}); got != plain {
		t.Errorf("without a password Error = %v, want the error itself", got)
	}
	if got := ErrorOf(plain, "::not a url"); got != plain {
		t.Errorf("ErrorOf(unparsable, no password) = %v, want the error itself", got)
	}
}

// TestErrorOfUnparsable: the password of a URL net/url rejects is found by
// hand, and hidden wherever the message repeats it.
func TestErrorOfUnparsable(t *testing.T) {
	raw := "mysql://app:pa ss^wd@h:3306/db"
	err := ErrorOf(fmt.Errorf("cannot log in with %q as %s: %w", "pa ss^wd", "pa%20ss%5Ewd", io.EOF), raw)
	if got := err.Error(); strings.Contains(got, "ss^wd") || strings.Contains(got, "ss%5Ewd") {
		t.Errorf("ErrorOf = %q: the password shows", got)
	}
	if !errors.Is(err, io.EOF) {
		t.Error("ErrorOf dropped the chain")
	}
}

// TestErrorPieces: a password with an unescaped '/' and '@' parses as
// something else (host b, path /cTAIL@...); its long pieces, which drivers
// repeat as host or database name, are hidden too.
func TestErrorPieces(t *testing.T) {
	u, err := url.Parse("postgres://app:HEADa@b/cTAIL@127.0.0.1:1/db")
	if err != nil {
		t.Fatal(err)
	}
	got := Error(errors.New("failed to connect to `user=app database=cTAIL@127.0.0.1:1/db` at b: HEADa rejected"), u).Error()
	if strings.Contains(got, "HEAD") || strings.Contains(got, "TAIL") {
		t.Errorf("Error = %q: pieces of the password show", got)
	}
}
