package redact

import (
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
)

func TestError(t *testing.T) {
	u, _ := url.Parse("postgres://app:s%2Fe+cr%40et@db/x")
	pw, _ := u.User.Password() // "s/e+cr@et"
	for _, msg := range []string{"dial " + pw, "url postgres://app:" + url.PathEscape(pw) + "@db", "q=" + url.QueryEscape(pw)} {
		err := Error(errors.Join(io.EOF, errors.New(msg)), u)
		if got := err.Error(); got == msg || !strings.Contains(got, "xxxxx") {
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
		t.Errorf("ErrorOf(unparsable) = %v, want the error itself", got)
	}
}
