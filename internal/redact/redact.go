// Package redact keeps a store URL's password out of error messages.
package redact

import (
	"net/url"
	"strings"
)

// Error hides the password of u in err's message (as written, and as it
// appears path- or query-escaped), keeping err in the chain for errors.Is
// and errors.As. It returns err itself when u has no password.
func Error(err error, u *url.URL) error {
	if err == nil || u == nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return err
	}
	return &redactedError{err: err, secret: pw}
}

// ErrorOf is Error for a URL not parsed yet; a string that does not parse
// leaves err as it is.
func ErrorOf(err error, rawURL string) error {
	u, perr := url.Parse(rawURL)
	if perr != nil {
		return err
	}
	return Error(err, u)
}

type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string {
	msg := strings.ReplaceAll(e.err.Error(), e.secret, "xxxxx")
	for _, esc := range []string{url.PathEscape(e.secret), url.QueryEscape(e.secret)} {
		if esc != e.secret {
			msg = strings.ReplaceAll(msg, esc, "xxxxx")
		}
	}
	return msg
}

func (e *redactedError) Unwrap() error { return e.err }
