package distlock

import (
	"errors"
	"strconv"
	"strings"

	"github.com/distlock/distlock/driver"
)

// Sentinel errors, for errors.Is. Each has one meaning.
var (
	// ErrLocked: someone else holds the key (TryLock, or Lock whose wait ended).
	ErrLocked = driver.ErrLocked
	// ErrNotHeld: the lock is no longer ours (Unlock or Refresh after a loss).
	ErrNotHeld = driver.ErrNotHeld
	// ErrLost: the lock was lost while held (expired, taken over, removed).
	// Lock.Err and Do return it wrapped with the cause.
	ErrLost = errors.New("distlock: lock lost")
	// ErrUnavailable: the store could not be reached.
	ErrUnavailable = driver.ErrUnavailable
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("distlock: client is closed")
	// ErrInvalid: an argument is invalid (key, TTL, option, store URL). The
	// message names the problem.
	ErrInvalid = errors.New("distlock: invalid argument")
)

// Error is the error every Client and Lock method returns. It unwraps to a
// sentinel (ErrLocked, ErrLost, ...) and to the store's own error, so both
// errors.Is(err, distlock.ErrLocked) and errors.As(err, &someDriverError) work.
type Error struct {
	Op      string // "lock", "trylock", "unlock", "refresh", "status", "open", "renew"
	Key     string // empty for client-wide operations
	Backend string // the driver's name ("sqlite")
	Err     error  // what went wrong; wraps a sentinel where one applies
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("distlock: ")
	b.WriteString(e.Op)
	if e.Key != "" {
		b.WriteString(" ")
		b.WriteString(quoteKey(e.Key))
	}
	if e.Backend != "" {
		b.WriteString(" on ")
		b.WriteString(e.Backend)
	}
	b.WriteString(": ")
	// Wrapped sentinels each start with "distlock: "; say it once.
	msg := strings.TrimPrefix(e.Err.Error(), "distlock: ")
	b.WriteString(strings.ReplaceAll(msg, ": distlock: ", ": "))
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// quoteKey shows a key in messages, shortened so a 1 KiB key does not flood
// a log line.
func quoteKey(k string) string {
	const max = 64
	if len(k) > max {
		cut := max
		for cut > 0 && !isRuneStart(k[cut]) {
			cut--
		}
		return quote(k[:cut]) + "…"
	}
	return quote(k)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func quote(s string) string { return strconv.Quote(s) }
