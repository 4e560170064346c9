package main

import (
	"net/url"
	"strings"
	"testing"
)

// The password FuzzStorePassword hides is passwordHead + the fuzzed bytes +
// passwordTail: a leak of any part of it that reaches either end shows a
// marker.
const (
	passwordHead = "Hd7q"
	passwordTail = "Zt4k"
)

// fuzzStores are store URLs, one per scheme in the binary, with PW where
// the password goes. Each fails fast: a port nothing listens on, on the
// loopback interface only.
var fuzzStores = []struct{ url, path, query string }{
	{"sqlite://app:PW@127.0.0.1:1/db", "/db", ""},
	{"redis://app:PW@127.0.0.1:1/0?max_retries=-1", "/0", "max_retries=-1"},
	{"rediss://app:PW@127.0.0.1:1/0?max_retries=-1", "/0", "max_retries=-1"},
	{"redlock://app:PW@127.0.0.1:1/0", "/0", ""},
	{"etcd://app:PW@127.0.0.1:1?dial_timeout=100ms", "", "dial_timeout=100ms"},
	{"postgres://app:PW@127.0.0.1:1/db", "/db", ""},
	{"postgresql://app:PW@127.0.0.1:1/db", "/db", ""},
	{"mysql://app:PW@127.0.0.1:1/db", "/db", ""},
}

// fuzzCommands are the commands that take a store URL.
var fuzzCommands = [][]string{
	{"status", "--store", "STORE", "k"},
	{"run", "--store", "STORE", "--wait", "0", "k", "--", "true"},
	{"migrate", "--store", "STORE"},
	{"migrate", "--store", "STORE", "--print"},
	{"gc", "--store", "STORE"},
}

// FuzzStorePassword runs a command with a store URL whose password is
// made of any bytes, for every scheme: the password never shows on stdout
// or stderr, whether or not the URL parses. A URL that parses as pointing
// anywhere but the template's loopback address (a password with an
// unescaped '@' or '?' moves the host or adds parameters) is not run: it
// could connect elsewhere; FuzzURL in internal/redact covers its redaction.
// The seeds are in testdata/fuzz/FuzzStorePassword.
func FuzzStorePassword(f *testing.F) {
	f.Fuzz(func(t *testing.T, scheme, command uint8, pw []byte) {
		secret := passwordHead + string(pw) + passwordTail
		s := fuzzStores[int(scheme)%len(fuzzStores)]
		store := strings.Replace(s.url, "PW", secret, 1)
		if u, err := url.Parse(store); err == nil && (u.Host != "127.0.0.1:1" || u.Path != s.path || u.RawQuery != s.query || u.Fragment != "") {
			t.Skip("the URL would reach another address or carry other parameters")
		}
		args := append([]string(nil), fuzzCommands[int(command)%len(fuzzCommands)]...)
		for i, a := range args {
			if a == "STORE" {
				args[i] = store
			}
		}
		r := runCLI(t, args...)
		out := r.stdout + r.stderr
		if strings.Contains(out, passwordHead) || strings.Contains(out, passwordTail) {
			t.Errorf("%q shows the password:\n%v", args, r)
		}
		if r.code == exitOK && args[len(args)-1] != "--print" {
			t.Errorf("%q succeeded against a store nobody runs:\n%v", args, r)
		}
	})
}
