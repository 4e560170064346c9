package etcdlock_test

import (
	"context"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/drivertest"
	"github.com/distlock/distlock/etcdlock"
	"github.com/distlock/distlock/internal/etcdtest"
)

// harness gives each NewDriver a client of its own, as separate processes
// would have, and evicts by deleting the holder's key through another.
type harness struct {
	c     *etcdtest.Cluster
	admin *clientv3.Client
}

func (h *harness) NewDriver(ctx context.Context, t *testing.T) (driver.Driver, error) {
	return etcdlock.OpenDriver(ctx, etcdlock.Config{Endpoints: h.c.Endpoints()})
}

func (h *harness) Evict(ctx context.Context, t *testing.T, key string) error {
	kv, err := holderKey(ctx, h.admin, key+"/")
	if err != nil || kv == "" {
		return err
	}
	_, err = h.admin.Delete(ctx, kv)
	return err
}

// holderKey returns the key of the holder of the lock whose queue prefix is
// prefix: the direct child with the lowest create revision.
func holderKey(ctx context.Context, cli *clientv3.Client, prefix string) (string, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return "", err
	}
	for _, kv := range resp.Kvs {
		if rest := strings.TrimPrefix(string(kv.Key), prefix); !strings.Contains(rest, "/") {
			return string(kv.Key), nil
		}
	}
	return "", nil
}

func TestConformance(t *testing.T) {
	c := etcdtest.Start(t)
	drivertest.RunConformanceTests(t, &harness{c: c, admin: c.Client(t)})
}
