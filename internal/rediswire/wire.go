package rediswire

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// Millis converts a TTL to whole milliseconds for PX and PEXPIRE, rounding up
// so a lock never lives shorter than asked (and at least 1 ms).
func Millis(d time.Duration) int64 {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return max(int64(ms), 1)
}

func (n Names) all() []string { return []string{n.Lock, n.Record, n.Queue, n.Waiters} }

// FenceKeep is how long a lock name's record (Names.Record, which carries its
// last fence) outlives the lock's TTL, counted from the last grant or
// renewal. Under the fence rule (next fence = max(last + 1, the server's
// clock in microseconds)) a missing record is safe as soon as the server's
// clock has passed every fence it carried, which it has microseconds after
// the grant, unless the clock steps back: keeping the record this long
// keeps fences strictly increasing through any step back of the server's
// clock shorter than FenceKeep, and bounds what a key leaves behind once
// nobody locks it.
const FenceKeep = time.Hour

// fenceKeep is FenceKeep, shortened by tests that watch records expire.
var fenceKeep = FenceKeep

// RecordExpiry is the expiry, in ms, that a grant or renewal with ttl gives
// the record: ttl, then FenceKeep.
func RecordExpiry(ttl time.Duration) int64 { return Millis(ttl) + Millis(fenceKeep) }

// KeepMillis is FenceKeep in milliseconds, as the scripts take it.
func KeepMillis() int64 { return Millis(fenceKeep) }

// checkToken refuses a token the record cannot carry: the record is
// "<fence> <token> <owner>".
func checkToken(token string) error {
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return fmt.Errorf("%w: token %q is empty or contains white space", distlock.ErrInvalid, token)
	}
	return nil
}

// Acquire tries once to take n.Lock for token: one EVALSHA (EVAL after a
// NOSCRIPT reply). It sets the lock with PX ttl if the key is free, or, if the
// lock already holds token (a retried request), extends it by ttl and returns
// the lease it holds. A new lease gets a fresh fence. Contention is a
// *driver.HeldError carrying the holder's remaining TTL and, when the holder
// took the lock through this scheme, its owner and fence.
// A lock name in distlock's own key space (see CheckLock), or a record
// that is not a string, is refused with an error wrapping
// distlock.ErrInvalid; nothing is then held. Other errors are returned as
// go-redis gave them (see Classify).
func Acquire(ctx context.Context, c redis.Scripter, n Names, token, owner string, ttl time.Duration) (driver.Lease, error) {
	return AcquireAbove(ctx, c, n, token, owner, ttl, 0)
}

// MaxFloorLead is how far ahead of the server's clock AcquireAbove's floor
// may be (fence.lua's stamp ignores a floor further ahead).
const MaxFloorLead = 2 * time.Second

// AcquireAbove is Acquire whose new fence is at least floor: Redlock asks
// every node for the same floor, so that nodes whose records agree (or
// stand below it) make the same fence. A floor more than MaxFloorLead ahead
// of the server's clock is ignored, so a caller's clock that runs ahead can
// never carry fences far past the server's.
func AcquireAbove(ctx context.Context, c redis.Scripter, n Names, token, owner string, ttl time.Duration, floor uint64) (driver.Lease, error) {
	if err := CheckLock(n.Lock); err != nil {
		return driver.Lease{}, err
	}
	if err := checkToken(token); err != nil {
		return driver.Lease{}, err
	}
	ms := Millis(ttl)
	res, err := acquireScript.Run(ctx, c, []string{n.Lock, n.Record}, token, ms, owner, Millis(fenceKeep), strconv.FormatUint(floor, 10)).Slice()
	if err != nil {
		return driver.Lease{}, badFence(n, err)
	}
	return acquireResult(n.Lock, token, ms, res)
}

// badFence names the record when a script refused a grant because the
// record is not a string.
func badFence(n Names, err error) error {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return err
	}
	msg, ok := strings.CutPrefix(rerr.Error(), "BADFENCE ")
	if !ok {
		return err
	}
	msg, _, _ = strings.Cut(msg, " script: ") // the server's note of where
	return &badFenceError{
		msg: fmt.Sprintf("%v: the record %q of lock %q %s, so no fence can be made for the lock; deleting that key mends it",
			distlock.ErrInvalid, n.Record, n.Lock, msg),
		err: err,
	}
}

// badFenceError is distlock.ErrInvalid and the server's error reply,
// worded once.
type badFenceError struct {
	msg string
	err error
}

func (e *badFenceError) Error() string   { return e.msg }
func (e *badFenceError) Unwrap() []error { return []error{distlock.ErrInvalid, e.err} }

func acquireResult(key, token string, ms int64, res []any) (driver.Lease, error) {
	if len(res) < 2 {
		return driver.Lease{}, fmt.Errorf("rediswire: unexpected acquire reply %v", res)
	}
	ok, _ := res[0].(int64)
	if ok == 1 {
		f, _ := res[1].(int64)
		return driver.Lease{Key: key, Token: token, Fence: uint64(f), TTL: time.Duration(ms) * time.Millisecond}, nil
	}
	pttl, _ := res[1].(int64)
	h := driver.Holder{Held: true, TTL: pttlDuration(pttl)}
	if len(res) > 3 {
		holder, _ := res[2].(string)
		if r, ok := res[3].(string); ok {
			if rec, ok := parseRecord(r); ok && rec.token == holder {
				h.Owner, h.Fence = rec.owner, rec.fence
			}
		}
	}
	return driver.Lease{}, &driver.HeldError{Holder: h}
}

func pttlDuration(pttl int64) time.Duration {
	if pttl <= 0 {
		return 0 // -1: no expiry (set by someone else), -2: gone meanwhile
	}
	return time.Duration(pttl) * time.Millisecond
}

// record is the value of Names.Record: "<fence> <token> <owner>".
type record struct {
	fence        uint64
	token, owner string
}

// parseRecord reads a record; ok is false for anything else.
func parseRecord(s string) (record, bool) {
	f, rest, ok := strings.Cut(s, " ")
	if !ok {
		return record{}, false
	}
	token, owner, ok := strings.Cut(rest, " ")
	fence, err := strconv.ParseUint(f, 10, 64)
	if !ok || err != nil || token == "" {
		return record{}, false
	}
	return record{fence: fence, token: token, owner: owner}, true
}

// Release deletes n.Lock only if it holds token: one EVALSHA. If waiters are
// queued (see Enqueue), the lock is handed to the oldest live one instead of
// deleted, with a new fence, and a message naming it is published on the
// channel its entry names (n.Channel if none); if the record is not a
// string, the lock is deleted instead. The record stays, with its expiry:
// it keeps the last fence. driver.ErrNotHeld if the lock does not
// hold token.
func Release(ctx context.Context, c redis.Scripter, n Names, token string) error {
	r, err := releaseScript.Run(ctx, c, n.all(), token, n.Channel, Millis(fenceKeep)).Int64()
	if err != nil {
		return err
	}
	if r == 0 {
		return driver.ErrNotHeld
	}
	return nil
}

// Inspect reads who holds n.Lock: one EVALSHA (GET, PTTL and the holder's
// metadata, atomically). A holder that locked through another library (the
// value is not the token in the metadata) is reported with its token, its TTL
// and a zero fence. A lock name in distlock's own key space is refused (see
// CheckLock).
func Inspect(ctx context.Context, c redis.Scripter, n Names) (driver.Holder, error) {
	if err := CheckLock(n.Lock); err != nil {
		return driver.Holder{}, err
	}
	res, err := inspectScript.Run(ctx, c, []string{n.Lock, n.Record}).Slice()
	if err != nil {
		return driver.Holder{}, err
	}
	if len(res) == 0 {
		return driver.Holder{}, nil
	}
	if len(res) < 2 {
		return driver.Holder{}, fmt.Errorf("rediswire: unexpected inspect reply %v", res)
	}
	token, _ := res[0].(string)
	pttl, _ := res[1].(int64)
	h := driver.Holder{Held: true, Token: token, TTL: pttlDuration(pttl)}
	if len(res) > 2 {
		if s, ok := res[2].(string); ok {
			if rec, ok := parseRecord(s); ok && rec.token == token {
				h.Owner, h.Fence = rec.owner, rec.fence
			}
		}
	}
	return h, nil
}

// RenewItem is one lock to extend.
type RenewItem struct {
	Names Names
	Token string
	TTL   time.Duration
}

// Renew extends each item's lock by its TTL, only if it still holds the
// item's token: one pipeline of EVALSHA, one round trip for the whole batch
// (two after the server lost its script cache: SCRIPT LOAD, then again).
// The first result has one entry per item: nil (extended), driver.ErrNotHeld
// (not held by the token) or that item's error. A non-nil second result means
// the batch failed as a whole.
func Renew(ctx context.Context, c redis.Cmdable, items []RenewItem) ([]error, error) {
	if len(items) == 0 {
		return nil, nil
	}
	errs, noScript, err := renewOnce(ctx, c, items)
	if err == nil && noScript {
		if err := renewScript.Load(ctx, c).Err(); err != nil {
			return nil, err
		}
		errs, _, err = renewOnce(ctx, c, items)
	}
	return errs, err
}

func renewOnce(ctx context.Context, c redis.Cmdable, items []RenewItem) ([]error, bool, error) {
	pipe := c.Pipeline()
	cmds := make([]*redis.Cmd, len(items))
	for i, it := range items {
		cmds[i] = renewScript.EvalSha(ctx, pipe, []string{it.Names.Lock, it.Names.Record}, it.Token, Millis(it.TTL), Millis(fenceKeep))
	}
	_, err := pipe.Exec(ctx)
	errs := make([]error, len(items))
	noScript, answered := false, false
	for i, cmd := range cmds {
		r, cerr := cmd.Int64()
		switch {
		case cerr == nil && r == 1:
			answered = true
		case cerr == nil:
			answered = true
			errs[i] = driver.ErrNotHeld
		case redis.HasErrorPrefix(cerr, "NOSCRIPT"):
			answered, noScript = true, true
			errs[i] = cerr
		default:
			var rerr redis.Error
			if errors.As(cerr, &rerr) {
				answered = true // the server answered this one with an error
			}
			errs[i] = cerr
		}
	}
	if err != nil && !answered {
		return nil, false, err
	}
	return errs, noScript, nil
}

// Enqueue is EnqueueNotify with n.Channel as the channel.
func Enqueue(ctx context.Context, c redis.Scripter, n Names, token, owner string, ttl, lease time.Duration) (driver.Lease, error) {
	return EnqueueNotify(ctx, c, n, token, owner, n.Channel, ttl, lease)
}

// EnqueueNotify is one step of a blocking acquire that waits in the
// server-side queue: one EVALSHA. If n.Lock is free or was already handed to
// token, it is taken (the lease is returned and token's queue entry removed).
// Otherwise token's waiter entry is added at the back of the queue (or
// refreshed, keeping its place) and lives for lease unless refreshed by
// another call; the result is then a *driver.HeldError with the holder's
// remaining TTL (no owner). A release that hands the lock to token publishes
// "<fence> <token>" on channel (which must not contain '|'). The waiter must
// be subscribed to channel before its first call, so it cannot miss the
// hand-over.
func EnqueueNotify(ctx context.Context, c redis.Scripter, n Names, token, owner, channel string, ttl, lease time.Duration) (driver.Lease, error) {
	if strings.Contains(channel, "|") {
		return driver.Lease{}, fmt.Errorf("rediswire: channel %q contains '|'", channel)
	}
	if err := CheckLock(n.Lock); err != nil {
		return driver.Lease{}, err
	}
	if err := checkToken(token); err != nil {
		return driver.Lease{}, err
	}
	ms := Millis(ttl)
	res, err := enqueueScript.Run(ctx, c, n.all(), token, ms, owner, Millis(lease), channel, Millis(fenceKeep)).Slice()
	if err != nil {
		return driver.Lease{}, badFence(n, err)
	}
	return acquireResult(n.Lock, token, ms, res)
}

// Leave removes token's waiter entry. If a release already handed the lock to
// token, Leave passes it on to the next live waiter (or deletes it), so a
// waiter that gives up never holds up the ones behind it. One EVALSHA.
// It reports whether the lock had been handed to token.
func Leave(ctx context.Context, c redis.Scripter, n Names, token string) (bool, error) {
	r, err := leaveScript.Run(ctx, c, n.all(), token, n.Channel, Millis(fenceKeep)).Int64()
	if err != nil {
		return false, err
	}
	return r != 0, nil
}

// ParseHandoff reads a message published on a Channel: the fence and the
// token of the waiter the lock was handed to.
func ParseHandoff(payload string) (fence uint64, token string, ok bool) {
	f, t, found := strings.Cut(payload, " ")
	if !found {
		return 0, "", false
	}
	fence, err := strconv.ParseUint(f, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return fence, t, true
}
