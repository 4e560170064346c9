// Package redact keeps store URLs' passwords out of what distlock says:
// errors, logs and the CLI's output. It works on any string, including
// URLs that do not parse (a password with a space, '^', '/' ...), whose
// user information it finds by hand.
package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Mask is what a hidden password is replaced with.
const Mask = "xxxxx"

// URL returns s with the password of every URL in it hidden. For each
// "://" in s, the password runs from the first ':' after it to the
// '@' that ends the user information: the last '@' of the URL's authority
// when s parses as a URL whose authority has one, else the last '@' in the
// rest of s, since a password with '/', '?', '#' or '@' in it would carry
// the '@' past where net/url ends the authority. Where the end is
// ambiguous, more is hidden rather than less: in a message that goes on
// after the URL, up to the message's last '@'. URL also drops what
// net/url's errors quote of a URL (`invalid port ":x" after host`), which
// may be part of a password.
func URL(s string) string {
	s = dropNetURLQuotes(s)
	exact := authorityEnd(s)
	var b strings.Builder
	rest, done := s, 0
	for {
		i := schemeSep(rest)
		if i < 0 {
			break
		}
		head := i + len("://")
		from, to, ok := password(rest[head:], exact-done-head)
		if !ok {
			b.WriteString(rest[:head])
			rest, done = rest[head:], done+head
			continue
		}
		b.WriteString(rest[:head+from])
		b.WriteString(Mask)
		rest, done = rest[head+to:], done+head+to
	}
	b.WriteString(rest)
	return b.String()
}

// authorityEnd returns where the authority of s ends when s is one URL
// that net/url parses with a user information and nothing after its
// authority has an '@', and -1 otherwise.
func authorityEnd(s string) int {
	u, err := url.Parse(s)
	if err != nil || u.User == nil || u.Opaque != "" {
		return -1
	}
	start := strings.Index(s, "//") + 2
	end := strings.IndexAny(s[start:], "/?#")
	if end < 0 {
		return len(s)
	}
	if strings.Contains(s[start+end:], "@") {
		return -1 // maybe the rest of a password
	}
	return start + end
}

// schemeSep returns the index of the first "://" in s, or -1. Whatever
// comes before it is taken for a scheme: a malformed one hides no less.
func schemeSep(s string) int { return strings.Index(s, "://") }

// password finds the password in s, the text after a "scheme://": it
// returns the offsets of its first byte and of the '@' after it. authEnd,
// when not negative, is where s's authority is known to end.
func password(s string, authEnd int) (from, to int, ok bool) {
	if s == "" || s[0] == '/' {
		return 0, 0, false // no authority: sqlite:///path
	}
	scope := s
	if authEnd >= 0 && authEnd <= len(s) {
		scope = s[:authEnd]
	}
	at := strings.LastIndexByte(scope, '@')
	if at < 0 {
		return 0, 0, false
	}
	colon := strings.IndexByte(s[:at], ':')
	if colon < 0 {
		return 0, 0, false // a user name alone
	}
	return colon + 1, at, true
}

// netURLQuote matches what net/url's parse errors quote of the URL: a port,
// an escape, a character of the host.
var netURLQuote = regexp.MustCompile(`(invalid port|invalid URL escape|invalid character) "(?:[^"\\]|\\.)*"`)

func dropNetURLQuotes(s string) string { return netURLQuote.ReplaceAllString(s, "$1") }

// Error hides the password of u in err's message (as written, decoded, and
// as it appears path-, query- or userinfo-escaped or Go-quoted, and the pieces of it
// that net/url reads as host or path when it holds an unescaped '/' or '@'),
// and the password of any URL in the message, keeping err in the chain for
// errors.Is and errors.As. It returns err itself when u has no password.
func Error(err error, u *url.URL) error {
	if err == nil || u == nil {
		return err
	}
	return withSecrets(err, secretsOf(u.String(), u))
}

// ErrorOf is Error for a URL given as a string, which need not parse: its
// password is then found as URL finds it.
func ErrorOf(err error, rawURL string) error {
	if err == nil {
		return err
	}
	u, perr := url.Parse(rawURL)
	if perr != nil {
		u = nil
	}
	return withSecrets(err, secretsOf(rawURL, u))
}

func withSecrets(err error, secrets []string) error {
	if len(secrets) == 0 {
		return err
	}
	return &redactedError{err: err, secrets: secrets}
}

// minPiece is the shortest piece of a password, between the '/', '?', '#'
// or '@' in it, that is hidden on its own wherever it appears: net/url
// reads such pieces as host, path or query, which drivers repeat in their
// errors; shorter pieces would hide common words.
const minPiece = 4

// secretsOf returns the strings that give away the password of u, and of
// raw as URL reads it, longest first. What URL reads is only a guess when
// u, the parse of raw, says otherwise: it is hidden only when it is long
// enough not to hide common words.
func secretsOf(raw string, u *url.URL) []string {
	var pws []string
	if u != nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			pws = append(pws, pw)
		}
	}
	if i := schemeSep(raw); i >= 0 {
		head := i + len("://")
		if from, to, ok := password(raw[head:], authorityEnd(raw)-head); ok && to > from {
			pw := raw[head+from : head+to]
			whole := []string{pw}
			if dec, err := url.PathUnescape(pw); err == nil && dec != pw {
				whole = append(whole, dec)
			}
			for _, w := range whole {
				if len(w) >= minPiece || u == nil {
					pws = append(pws, w)
				}
				for _, piece := range strings.FieldsFunc(w, func(r rune) bool { return strings.ContainsRune("/?#@", r) }) {
					if len(piece) >= minPiece {
						pws = append(pws, piece)
					}
				}
			}
		}
	}
	var out []string
	for _, pw := range pws {
		userinfo := strings.TrimPrefix(url.UserPassword("", pw).String(), ":")
		quoted := strconv.Quote(pw)
		out = append(out, pw, url.PathEscape(pw), url.QueryEscape(pw), userinfo, quoted[1:len(quoted)-1])
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

type redactedError struct {
	err     error
	secrets []string // longest first
}

func (e *redactedError) Error() string {
	msg := e.err.Error()
	for _, s := range e.secrets {
		msg = strings.ReplaceAll(msg, s, Mask)
	}
	return URL(msg)
}

func (e *redactedError) Unwrap() error { return e.err }
