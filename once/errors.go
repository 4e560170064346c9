package once

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/distlock/distlock"
)

// Sentinel errors, for errors.Is. Errors from this package also wrap the
// distlock sentinels where one applies: distlock.ErrInvalid for bad input,
// distlock.ErrNotHeld when a claim is no longer ours, distlock.ErrLost when a
// claim was lost while held, distlock.ErrClosed after Close.
var (
	// ErrDone: the key's work has already been completed. The error is a
	// *DoneError carrying the stored result.
	ErrDone = errors.New("once: already done")
	// ErrInProgress: another claimer holds a live claim on the key. The
	// error is an *InProgressError saying who and until when.
	ErrInProgress = errors.New("once: in progress")
)

var errInvalid = distlock.ErrInvalid

// DoneError is Claim's answer when the key has been completed. It matches
// ErrDone with errors.Is.
type DoneError struct {
	Key         string
	Result      []byte    // what Complete stored (nil if none)
	Fence       uint64    // the fence of the claim that completed it
	Owner       string    // the owner of the claim that completed it
	CompletedAt time.Time // by the database's clock
}

func (e *DoneError) Error() string {
	// No key: the *distlock.Error around it names it.
	s := "already done"
	if e.Owner != "" {
		s += " by " + ownerOrUnknown(e.Owner)
	}
	if !e.CompletedAt.IsZero() {
		s += " at " + e.CompletedAt.UTC().Format(time.RFC3339Nano)
	}
	return s
}

// Is makes errors.Is(err, ErrDone) true.
func (e *DoneError) Is(target error) bool { return target == ErrDone }

// InProgressError is Claim's answer when another claimer holds a live claim
// on the key. It matches ErrInProgress with errors.Is.
type InProgressError struct {
	Key   string
	Owner string        // the claimer's WithOwner metadata
	Fence uint64        // the live claim's fence
	TTL   time.Duration // time left on its lease, by the database's clock
	Until time.Time     // local estimate of the lease's end: now + TTL
}

func (e *InProgressError) Error() string {
	return fmt.Sprintf("in progress (claimed by %s, fence %d, lease ends in %v)",
		ownerOrUnknown(e.Owner), e.Fence, e.TTL.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrInProgress) true.
func (e *InProgressError) Is(target error) bool { return target == ErrInProgress }

func ownerOrUnknown(o string) string {
	if o == "" {
		return "an unnamed claimer"
	}
	return strconv.Quote(o)
}

// wrap gives err the operation, key and backend, as every distlock error
// has them.
func (g *Guard) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var e *distlock.Error
	if errors.As(err, &e) && e.Op == op {
		return err
	}
	return &distlock.Error{Op: op, Key: key, Backend: "once/" + string(g.d.db), Err: err}
}
