package redact

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// The password the fuzzers hide is head + the fuzzed bytes + tail: a leak
// of any part of it that reaches either end shows a marker.
const (
	head = "Hd7q"
	tail = "Zt4k"
)

// schemes are the store URL forms, one per scheme distlock registers,
// with PW where the password goes.
var schemes = []string{
	"sqlite://app:PW@127.0.0.1:1/db",
	"redis://app:PW@127.0.0.1:1/0",
	"rediss://app:PW@127.0.0.1:1/0",
	"redlock://app:PW@127.0.0.1:1,127.0.0.1:2/0",
	"etcd://app:PW@127.0.0.1:1",
	"postgres://app:PW@127.0.0.1:1/db",
	"postgresql://app:PW@127.0.0.1:1/db",
	"mysql://app:PW@127.0.0.1:1/db",
}

// FuzzURL checks, for every scheme and any password bytes, that neither
// URL nor ErrorOf nor Error lets the password show, in the ways Open and
// the drivers print a store URL: the URL itself, net/url's parse error,
// and a driver's error that repeats the URL, its password or its pieces.
// The seeds are in testdata/fuzz/FuzzURL.
func FuzzURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, scheme uint8, pw []byte) {
		secret := head + string(pw) + tail
		raw := strings.Replace(schemes[int(scheme)%len(schemes)], "PW", secret, 1)
		check := func(what, out string) {
			t.Helper()
			if strings.Contains(out, head) || strings.Contains(out, tail) {
				t.Errorf("%s of %q shows the password: %q", what, raw, out)
			}
		}
		check("URL", URL(raw))
		u, err := url.Parse(raw)
		if err != nil {
			msg := err.Error()
			var ue *url.Error
			if errors.As(err, &ue) {
				msg = ue.Err.Error()
			}
			check("the parse error", fmt.Sprintf("malformed store URL %s: %s", URL(raw), URL(msg)))
		} else {
			check("Error", Error(fmt.Errorf("connect to %s (%s, %s): refused", u.String(), u.Host, u.Path), u).Error())
		}
		check("ErrorOf", ErrorOf(fmt.Errorf("connect to %s as %q: refused", raw, secret), raw).Error())
	})
}
