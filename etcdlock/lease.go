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

// lease is the driver's one etcd lease. Every key the driver writes is bound
// to it; the client's keep-alive renews it in the background.
type lease struct {
	id     clientv3.LeaseID
	askedS int64         // the TTL asked for, whole seconds
	ttl    time.Duration // the TTL the server granted (it may raise it to its minimum)
	stopKA context.CancelFunc
	renew  *renewer // renewals on demand

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
	l := &lease{id: resp.ID, askedS: want, ttl: time.Duration(resp.TTL) * time.Second, stopKA: stop, dead: make(chan struct{}), okSent: sent}
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
// that keys the server still has go when it expires or is revoked).
func (d *etcdDriver) keepAlive(ctx context.Context, l *lease) {
	tick := max(l.ttl/6, 50*time.Millisecond)
	timer := time.NewTimer(0)
	defer timer.Stop()
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
		timer.Reset(tick)
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
