package redlock_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/redlock"
)

// Three independent Redis servers; a lock needs two of them. (Not run by
// go test: it needs the servers.)
func ExampleOpen() {
	ctx := context.Background()
	client, err := redlock.Open(ctx, "redlock://redis-a:6379,redis-b:6379,redis-c:6379?prefix=locks:")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	err = client.Do(ctx, "nightly-report", func(ctx context.Context) error {
		// ctx is cancelled if the lock is lost.
		fmt.Println("building the report")
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Your own go-redis clients, one per server. Client.Close leaves them open.
func ExampleNew() {
	ctx := context.Background()
	var nodes []redis.UniversalClient
	for _, addr := range []string{"redis-a:6379", "redis-b:6379", "redis-c:6379"} {
		c := redis.NewClient(&redis.Options{
			Addr:                  addr,
			ContextTimeoutEnabled: true, // let the per-node limit bound socket reads
			MaxRetries:            -1,
			DialerRetries:         1,
		})
		defer c.Close()
		nodes = append(nodes, c)
	}
	client, err := redlock.New(ctx, nodes, &redlock.Options{Prefix: "locks:"}, distlock.WithTTL(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	lock, err := client.TryLock(ctx, "invoice/42")
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Unlock(ctx)
	fmt.Println("fence:", lock.Fence())
}
