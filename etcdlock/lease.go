package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distlock/distlock"
)

// lease is one etcd lease of the driver: the one in force, which new
// requests use, or a retired one (see retireLocked). Every key the driver
// writes is bound to a lease; the driver's keep-alive renews it in the
// background.
type lease struct {
	id     clientv3.LeaseID
	askedS int64         // the TTL asked for, whole seconds
	ttl    time.Duration // the TTL the server granted (it may raise it to its minimum)
	stopKA context.CancelFunc
	renew  *renewer // renewals on demand

	// Guarded by the driver's mu:
	// users are the requests that may write, or hold, a key on this lease:
	// each took its name's slot while the lease was usable (see bind).
	users map[*entry]struct{}
	// retired: a write on this lease had an unknown outcome, so new
	// requests go on another lease; this one lives while it has users.
	retired bool

	mu     sync.Mutex
	okSent time.Time // send time of the last renewal (or grant) that succeeded

	dead     chan struct{} // closed once the lease is lost
	deadOnce sync.Once
	deadErr  error // why; set before dead closes
}

func (l *lease) stop() {
	l.stopKA()
	l.renew.close()
}

// markDead records that the lease is lost (expired, revoked, or its
// keep-alive failed for a whole TTL). It reports whether this call did it.
func (l *lease) markDead(err error) bool {
	did := false
	l.deadOnce.Do(func() {
		l.deadErr = err
		close(l.dead)
		did = true
	})
	return did
}

func (l *lease) isDead() bool {
	select {
	case <-l.dead:
		return true
	default:
		return false
	}
}

// ttlSeconds rounds a TTL up to whole seconds, as etcd leases count.
func ttlSeconds(ttl time.Duration) int64 {
	return int64((ttl + time.Second - 1) / time.Second)
}

// leaseFor returns the lease in force, granting one at first use (one round
// trip, and the start of its keep-alive). The first lock's TTL
// decides the lease's; a lock asking for another TTL is refused, since all
// locks of a driver share the lease.
func (d *etcdDriver) leaseFor(ctx context.Context, ttl time.Duration) (*lease, error) {
	want := ttlSeconds(ttl)
	if l, err := d.currentLease(want); l != nil || err != nil {
		return l, err
	}
	d.grantMu.Lock()
	defer d.grantMu.Unlock()
	if l, err := d.currentLease(want); l != nil || err != nil {
		return l, err
	}
	sent := time.Now()
	resp, err := d.cli.Grant(ctx, want)
	if err != nil {
		// A lease granted whose answer was lost holds no key, and expires by
		// itself: nothing was taken.
		return nil, fmt.Errorf("%w: grant an etcd lease: %w", distlock.ErrUnavailable, err)
	}
	kctx, stop := context.WithCancel(context.Background())
	l := &lease{id: resp.ID, askedS: want, ttl: time.Duration(resp.TTL) * time.Second, stopKA: stop,
		dead: make(chan struct{}), okSent: sent, users: make(map[*entry]struct{})}
	l.renew = &renewer{d: d, id: resp.ID}
	d.mu.Lock()
	if !d.goLocked(func() { d.keepAlive(kctx, l) }) {
		d.mu.Unlock()
		l.stop()
		return nil, errClosed // the lease holds no key, and expires by itself
	}
	d.lease = l
	d.leases[l] = struct{}{}
	d.mu.Unlock()
	return l, nil
}

// currentLease returns the live lease if there is one and it has the TTL
// asked for; an ErrInvalid error if its TTL differs; nil, nil if there is
// none.
func (d *etcdDriver) currentLease(wantS int64) (*lease, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errClosed
	}
	l := d.lease
	if l == nil || l.isDead() {
		return nil, nil
	}
	if l.askedS != wantS {
		return nil, fmt.Errorf("%w: ttl %v differs from the %v of this Client's etcd lease: all locks of a Client share one lease, whose TTL the first lock set; give every lock of a Client the same TTL (WithTTL at Open) or use another Client",
			distlock.ErrInvalid, time.Duration(wantS)*time.Second, time.Duration(l.askedS)*time.Second)
	}
	return l, nil
}

// keepAlive renews l every third of its TTL, and declares it lost when no
// renewal sent within the last TTL succeeded: the server may have expired
// it by then, and the driver must not keep using it (nor keep it alive, so
// that keys the server still has go when it expires or is revoked). While
// l is retired it also sweeps l's keys every third of its TTL.
func (d *etcdDriver) keepAlive(ctx context.Context, l *lease) {
	tick := max(l.ttl/6, 50*time.Millisecond)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var swept time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if time.Since(l.lastRenewed()) >= l.ttl/3 {
			rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
			d.keepAliveNow(rctx, l)
			cancel()
			if ctx.Err() != nil {
				return
			}
		}
		if time.Since(l.lastRenewed()) >= l.ttl {
			d.loseLease(l, fmt.Errorf("etcd lease %x lost: no keep-alive succeeded within its TTL of %v", int64(l.id), l.ttl))
			return
		}
		if d.isRetired(l) && time.Since(swept) >= l.ttl/3 {
			swept = time.Now()
			rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
			d.sweep(rctx, l)
			cancel()
		}
		timer.Reset(tick)
	}
}

func (d *etcdDriver) isRetired(l *lease) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return l.retired
}

// unsure is called with the error of a write on l (a put, or a plain
// delete, of a key bound to l) whose outcome is unknown: it may still land,
// at any time. The driver then retires l, unless the server refused the
// write for good (nothing happened).
func (d *etcdDriver) unsure(l *lease, err error) {
	if err == nil || permanent(err) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.retireLocked(l)
}

// retireLocked makes new requests go on a new lease (granted when the next
// one comes), so that no key name on l is written anew once a write on l
// had an unknown outcome: a late plain delete of "K/<l>" can then never hit
// a newer key, and what lands late on l belongs to no request. l stays
// alive while it has users (the locks held on it, the requests in flight
// on it), its keys that belong to none are swept on every keep-alive
// interval, and it is revoked once its last user is gone. d.mu held.
func (d *etcdDriver) retireLocked(l *lease) {
	if l.retired || l.isDead() {
		return
	}
	l.retired = true
	if d.lease == l {
		d.lease = nil
	}
	if len(l.users) == 0 {
		d.endLocked(l)
	}
}

// errRetired is why a retired lease ends.
var errRetired = errors.New("retired after a write with an unknown outcome, and no lock holds it any more")

// endLocked revokes the retired lease l, which has no users left, in the
// background (retrying until the server answers): a late put bound to it
// is then refused, and a key that landed goes with it. d.mu held.
func (d *etcdDriver) endLocked(l *lease) {
	// Once the driver is closed, Close revokes it.
	d.goLocked(func() { d.loseLease(l, fmt.Errorf("etcd lease %x %w", int64(l.id), errRetired)) })
}

// bind makes e, which has its name's slot, a user of its lease. A lease
// that is retired or lost takes no new users: e then moves to the lease in
// force (granting one if needed), before it writes anything.
func (d *etcdDriver) bind(ctx context.Context, e *entry) error {
	for {
		d.mu.Lock()
		l := e.lease
		if !l.retired && !l.isDead() {
			l.users[e] = struct{}{}
			d.mu.Unlock()
			return nil
		}
		d.mu.Unlock()
		nl, err := d.leaseFor(ctx, time.Duration(l.askedS)*time.Second)
		if err != nil {
			return err
		}
		d.mu.Lock()
		e.lease, e.etcdKey = nl, leaseKey(e.prefix, nl.id)
		d.mu.Unlock()
	}
}

// sweep deletes the keys bound to the retired lease l that belong to none
// of its users: writes that landed after their request gave up. No request
// writes such a name on l again (l takes no new users), so a delete guarded
// by the key's lease removes only what landed late. Cost: one lease
// time-to-live with keys, plus one Txn per key swept.
func (d *etcdDriver) sweep(ctx context.Context, l *lease) {
	resp, err := d.cli.TimeToLive(ctx, l.id, clientv3.WithAttachedKeys())
	if err != nil {
		return
	}
	if resp.TTL <= 0 {
		d.loseLease(l, fmt.Errorf("etcd lease %x lost: the server no longer has it", int64(l.id)))
		return
	}
	d.mu.Lock()
	live := make(map[string]bool, len(l.users))
	for e := range l.users {
		live[e.etcdKey] = true
	}
	d.mu.Unlock()
	for _, k := range resp.Keys {
		if live[string(k)] {
			continue
		}
		if _, err := d.cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(string(k)), "=", int64(l.id))).
			Then(clientv3.OpDelete(string(k))).Commit(); err != nil {
			return // the next sweep tries again
		}
	}
}

func (l *lease) lastRenewed() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.okSent
}

func (l *lease) renewed(sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sent.After(l.okSent) {
		l.okSent = sent
	}
}

// loseLease marks l lost, forgets every lock held on it (their Renew and
// Release now answer ErrNotHeld) so that new requests use a new lease, and
// revokes it in the background in case the server still has it.
func (d *etcdDriver) loseLease(l *lease, err error) {
	if !l.markDead(err) {
		return
	}
	l.stop()
	d.mu.Lock()
	if d.lease == l {
		d.lease = nil
	}
	for _, e := range d.tokens {
		if e.lease == l && e.held {
			d.dropLocked(e)
		}
	}
	d.mu.Unlock()
	d.revokeLater(l)
}

// revokeLater revokes a lease the driver no longer uses, so that keys the
// server may still keep go at once. It retries until the server answers
// (revoked, or already gone) or the driver closes (Close revokes it then).
func (d *etcdDriver) revokeLater(l *lease) {
	d.goBackground(func() {
		backoff := 100 * time.Millisecond
		for {
			ctx, cancel := context.WithTimeout(d.life, 2*time.Second)
			_, err := d.cli.Revoke(ctx, l.id)
			cancel()
			if err == nil || isLeaseNotFound(err) || permanent(err) {
				d.mu.Lock()
				delete(d.leases, l)
				d.mu.Unlock()
				return
			}
			select {
			case <-d.closing:
				return
			case <-time.After(jitter(backoff)):
			}
			backoff = min(2*backoff, time.Second)
		}
	})
}

// keepAliveNow renews the lease once, from now on the server's clock. One
// round trip. A lease the server no longer has is marked lost.
func (d *etcdDriver) keepAliveNow(ctx context.Context, l *lease) error {
	sent := time.Now()
	err := l.renew.renew(ctx)
	if err == nil {
		l.renewed(sent)
	}
	if err != nil && isLeaseNotFound(err) {
		d.loseLease(l, fmt.Errorf("etcd lease %x lost: the server no longer has it", int64(l.id)))
	}
	return err
}

func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || status.Code(err) == codes.NotFound
}

// permanent reports whether retrying a request that failed with err is
// pointless: the server refused it for good.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.NotFound,
		codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented, codes.AlreadyExists:
		return true
	}
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrPermissionDenied) ||
		errors.Is(err, rpctypes.ErrInvalidAuthToken) || errors.Is(err, rpctypes.ErrAuthFailed)
}
