package etcdlock

import (
	"context"
	"errors"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// renewer renews one lease on demand over one long-lived LeaseKeepAlive
// stream of its own: a renewal is one message each way on an open stream,
// not a new stream per call as clientv3's KeepAliveOnce opens. The server
// answers a stream's requests in order, so answers are matched to callers
// first in, first out. A broken stream fails the calls waiting on it and is
// opened again by the next call.
type renewer struct {
	d  *etcdDriver
	id clientv3.LeaseID

	mu      sync.Mutex
	stream  pb.Lease_LeaseKeepAliveClient // nil: not open
	cancel  context.CancelFunc
	pending []chan renewResult
	closed  bool
}

type renewResult struct {
	ttl int64
	err error
}

var errRenewerClosed = errors.New("lease renewal stopped")

// renew renews the lease from now on the server's clock. One round trip on
// the open stream (two to open it).
func (r *renewer) renew(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errRenewerClosed
	}
	if r.stream == nil {
		// The stream outlives this call, but opening it (which waits while
		// the connection is being made) must end with ctx.
		sctx, cancel := context.WithCancel(context.Background())
		opening := context.AfterFunc(ctx, cancel)
		st, err := pb.NewLeaseClient(r.d.cli.ActiveConnection()).LeaseKeepAlive(clientv3.WithRequireLeader(sctx))
		if !opening() && err == nil {
			err = context.Cause(ctx)
		}
		if err != nil {
			cancel()
			r.mu.Unlock()
			return err
		}
		if !r.d.goBackground(func() { r.receive(st) }) {
			cancel()
			r.mu.Unlock()
			return errClosed
		}
		r.stream, r.cancel = st, cancel
	}
	ch := make(chan renewResult, 1)
	if err := r.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(r.id)}); err != nil {
		r.breakLocked(err)
		r.mu.Unlock()
		return err
	}
	r.pending = append(r.pending, ch)
	r.mu.Unlock()
	select {
	case res := <-ch:
		if res.err != nil {
			return res.err
		}
		if res.ttl <= 0 {
			return rpctypes.ErrLeaseNotFound
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// receive hands each answer of st to the oldest caller waiting.
func (r *renewer) receive(st pb.Lease_LeaseKeepAliveClient) {
	for {
		resp, err := st.Recv()
		r.mu.Lock()
		if r.stream != st {
			r.mu.Unlock()
			return
		}
		if err != nil {
			r.breakLocked(err)
			r.mu.Unlock()
			return
		}
		var ch chan renewResult
		if len(r.pending) > 0 {
			ch = r.pending[0]
			r.pending = r.pending[1:]
		}
		r.mu.Unlock()
		if ch != nil {
			ch <- renewResult{ttl: resp.TTL}
		}
	}
}

// breakLocked drops the stream and fails the calls waiting on it.
func (r *renewer) breakLocked(err error) {
	if r.cancel != nil {
		r.cancel()
	}
	r.stream, r.cancel = nil, nil
	for _, ch := range r.pending {
		ch <- renewResult{err: err}
	}
	r.pending = nil
}

// close stops the renewer for good.
func (r *renewer) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.breakLocked(errRenewerClosed)
}
