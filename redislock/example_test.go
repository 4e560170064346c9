package redislock_test

import (
	"context"
	"fmt"
	"log"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/redislock"
)

func ExampleOpen() {
	ctx := context.Background()
	client, err := redislock.Open(ctx, "redis://localhost:6379/0?prefix=locks:")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	lock, err := client.Lock(ctx, "nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Unlock(ctx)
	fmt.Println("fence", lock.Fence())
}

func ExampleNew() {
	ctx := context.Background()
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    "mymaster",
		SentinelAddrs: []string{"sentinel-1:26379", "sentinel-2:26379", "sentinel-3:26379"},
	})
	defer rdb.Close() // yours: closing the distlock Client leaves it open

	client, err := redislock.New(rdb, &redislock.Options{Prefix: "locks:"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	err = client.Do(ctx, "nightly-report", func(ctx context.Context) error {
		return nil // work while holding the lock
	})
	if err != nil {
		log.Fatal(err)
	}
}

func Example_distlockOpen() {
	// With the package imported (even blank), distlock.Open understands
	// redis:// and rediss:// URLs.
	client, err := distlock.Open(context.Background(), "rediss://:password@redis.example.com:6380/1")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
}
