package etcdlock

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distlock/distlock/driver"
)

// Release deletes the lock's key: one plain delete, as concurrency.Mutex
// sends. The key's name (queue prefix + lease ID) is this driver's alone,
// and while the delete is in flight the driver writes no new key of that
// name (the entry is marked releasing, so an acquire does not take it for
// gone), so the delete can only remove this lock. If the delete fails, its
// outcome is unknown: the lease is retired (no key of that name is written
// on it again, so the delete may land whenever it will), the lock is
// forgotten, and its key is deleted in the background, guarded by its
// create revision; the error wraps ErrUnavailable. A lock this driver did
// not grant (another process's token, or Fence 0 after a lost answer) is
// found by its token among the queue's keys first, and deleted only if its
// create revision is still the one read: one more round trip.
func (d *etcdDriver) Release(ctx context.Context, l driver.Lease) error {
	d.mu.Lock()
	e := d.tokens[l.Token]
	if e != nil && (!e.held || e.name != l.Key || (l.Fence != 0 && uint64(e.fence) != l.Fence)) {
		e = nil
	}
	if e != nil {
		e.releasing = true
	}
	d.mu.Unlock()
	if e != nil {
		resp, err := d.cli.Delete(ctx, e.etcdKey)
		if err != nil {
			d.retire(e)
			d.cleanLater(e, d.removal(e, e.fence))
			return fmt.Errorf("%w: delete %q (the driver keeps deleting it in the background): %w", driver.ErrUnavailable, e.etcdKey, err)
		}
		d.drop(e)
		if resp.Deleted == 0 {
			return fmt.Errorf("%w: key %q (fence %d) is gone", driver.ErrNotHeld, e.etcdKey, e.fence)
		}
		return nil
	}
	prefix := d.queuePrefix(l.Key)
	kv, err := d.holderKV(ctx, prefix)
	if err != nil {
		return fmt.Errorf("%w: read the holder of %q: %w", driver.ErrUnavailable, l.Key, err)
	}
	if kv == nil || tokenOf(kv) != l.Token || (l.Fence != 0 && uint64(kv.CreateRevision) != l.Fence) {
		return fmt.Errorf("%w: token does not hold %q", driver.ErrNotHeld, l.Key)
	}
	resp, err := d.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(string(kv.Key)), "=", kv.CreateRevision)).
		Then(clientv3.OpDelete(string(kv.Key))).
		Commit()
	if err != nil {
		// A guarded delete may land late without harm; the caller retries.
		return fmt.Errorf("%w: delete %q: %w", driver.ErrUnavailable, kv.Key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: key %q (fence %d) is gone", driver.ErrNotHeld, kv.Key, kv.CreateRevision)
	}
	return nil
}

// holderKV reads the holder's key: the direct child with the lowest create
// revision. One round trip (more only if deeper locks crowd the queue).
func (d *etcdDriver) holderKV(ctx context.Context, prefix string) (*mvccpb.KeyValue, error) {
	resp, err := d.cli.Get(ctx, prefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(pageSize))
	if err != nil {
		return nil, err
	}
	return d.firstDirect(ctx, prefix, (*pb.RangeResponse)(resp), resp.Header.Revision, true)
}

// Inspect reads the holder of key: its token (empty for a holder that is not
// distlock, such as concurrency.Mutex), fence (create revision), owner, and
// the time its lease has left. Two round trips: the range, then the lease's
// time to live.
func (d *etcdDriver) Inspect(ctx context.Context, key string) (driver.Holder, error) {
	kv, err := d.holderKV(ctx, d.queuePrefix(key))
	if err != nil {
		return driver.Holder{}, fmt.Errorf("%w: read the holder of %q: %w", driver.ErrUnavailable, key, err)
	}
	if kv == nil {
		return driver.Holder{}, nil
	}
	h := holderOf(kv)
	if kv.Lease != 0 {
		ttl, err := d.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
		if err != nil && ctx.Err() != nil {
			return driver.Holder{}, fmt.Errorf("%w: read the holder's lease: %w", driver.ErrUnavailable, err)
		}
		if err == nil && ttl.TTL > 0 {
			h.TTL = time.Duration(ttl.TTL) * time.Second
		}
	}
	return h, nil
}

// maxTxnOps stays below etcd's default limit of 128 operations per Txn.
const maxTxnOps = 100

// Renew renews the leases of the locks (one keep-alive message per lease,
// on that lease's own keep-alive stream, so its TTL counts from now on the
// server's clock) and, beside them, reads every lock's key in one Txn (per
// 100 locks) to check it still exists with its fence. All requests are
// sent together: one round trip of latency for any number of locks; the
// locks of a Client are on one lease, or on two or more only after a
// fault retired one (see Release). A lock whose key is gone, whose lease
// was lost, or that this driver did not grant, is ErrNotHeld; a lock whose
// keep-alive or key read failed gets that error (wrapping ErrUnavailable).
func (d *etcdDriver) Renew(ctx context.Context, leases []driver.Lease) ([]error, error) {
	res := make([]error, len(leases))
	entries := make([]*entry, len(leases))
	byLease := make(map[*lease][]int)
	var idx []int
	d.mu.Lock()
	for i, l := range leases {
		e := d.tokens[l.Token]
		switch {
		case e == nil || !e.held || e.name != l.Key || (l.Fence != 0 && uint64(e.fence) != l.Fence):
			res[i] = fmt.Errorf("%w: this driver holds no lock on %q for the token", driver.ErrNotHeld, l.Key)
		case e.lease.isDead():
			res[i] = fmt.Errorf("%w: %w", driver.ErrNotHeld, e.lease.deadErr)
		default:
			entries[i] = e
			byLease[e.lease] = append(byLease[e.lease], i)
			idx = append(idx, i)
		}
	}
	d.mu.Unlock()
	if len(idx) == 0 {
		return res, nil
	}

	var wg sync.WaitGroup
	kaLeases := make([]*lease, 0, len(byLease))
	for l := range byLease {
		kaLeases = append(kaLeases, l)
	}
	kaErrs := make([]error, len(kaLeases))
	for j, l := range kaLeases {
		wg.Go(func() { kaErrs[j] = d.keepAliveNow(ctx, l) })
	}
	chunks := (len(idx) + maxTxnOps - 1) / maxTxnOps
	resps := make([]*clientv3.TxnResponse, chunks)
	errs := make([]error, chunks)
	for c := range chunks {
		part := idx[c*maxTxnOps : min(len(idx), (c+1)*maxTxnOps)]
		wg.Go(func() {
			ops := make([]clientv3.Op, len(part))
			for j, i := range part {
				ops[j] = clientv3.OpGet(entries[i].etcdKey)
			}
			resps[c], errs[c] = d.cli.Txn(ctx).Then(ops...).Commit()
		})
	}
	wg.Wait()
	for j, l := range kaLeases {
		err := kaErrs[j]
		if err == nil {
			continue
		}
		if isLeaseNotFound(err) {
			err = fmt.Errorf("%w: etcd lease %x is gone", driver.ErrNotHeld, int64(l.id))
		} else {
			err = fmt.Errorf("%w: renew etcd lease %x: %w", driver.ErrUnavailable, int64(l.id), err)
		}
		for _, i := range byLease[l] {
			res[i] = err
		}
	}
	var lost []*entry
	for c, resp := range resps {
		part := idx[c*maxTxnOps : min(len(idx), (c+1)*maxTxnOps)]
		for j, i := range part {
			if res[i] != nil {
				continue // its lease's keep-alive decided
			}
			if errs[c] != nil {
				res[i] = fmt.Errorf("%w: read the lock's key: %w", driver.ErrUnavailable, errs[c])
				continue
			}
			e := entries[i]
			kvs := resp.Responses[j].GetResponseRange().Kvs
			if len(kvs) == 1 && kvs[0].CreateRevision == e.fence && clientv3.LeaseID(kvs[0].Lease) == e.lease.id {
				continue
			}
			res[i] = fmt.Errorf("%w: key %q (fence %d) is gone", driver.ErrNotHeld, e.etcdKey, e.fence)
			lost = append(lost, e)
		}
	}
	for _, e := range lost {
		d.drop(e)
	}
	return res, nil
}
