package etcdlock_test

import (
	"context"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/etcdlock"
)

// Open connects by URL; the import registers etcd://.
func ExampleOpen() {
	ctx := context.Background()
	client, err := distlock.Open(ctx, "etcd://127.0.0.1:2379?prefix=/locks/", distlock.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	err = client.Do(ctx, "reports/nightly", func(ctx context.Context) error {
		return nil // the work; ctx is cancelled if the lock is lost
	})
	if err != nil {
		log.Fatal(err)
	}
}

// New takes the etcd client you already have, and leaves it open on Close.
func ExampleNew() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	client, err := etcdlock.New(cli, nil, distlock.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	lock, err := client.TryLock(context.Background(), "migrations")
	if err != nil {
		log.Fatal(err) // errors.Is(err, distlock.ErrLocked) when held
	}
	defer lock.Unlock(context.Background())
	log.Printf("fence %d", lock.Fence()) // the key's create revision
}
