package pglock_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/pglock"
)

// Open connects with a URL of its own; the table is created on first use.
func ExampleOpen() {
	ctx := context.Background()
	client, err := pglock.Open(ctx, "postgres://app@db.internal:5432/app?sslmode=verify-full", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	err = client.Do(ctx, "nightly-report", func(ctx context.Context) error {
		// ctx is cancelled if the lock is lost.
		return nil
	})
	fmt.Println(err)
}

// New uses the pool the application already has.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db.internal:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	client, err := pglock.New(ctx, pool, &pglock.Options{Table: "locks.distlock_locks"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	l, err := client.TryLock(ctx, "invoice:2026-11")
	if err != nil {
		log.Fatal(err) // errors.Is(err, distlock.ErrLocked) when someone holds it
	}
	defer l.Unlock(ctx)
	fmt.Println("fence", l.Fence())
}

// With the package imported, distlock.Open takes postgres:// URLs; advisory
// mode also ends a lock as soon as its holder's connection dies.
func Example_advisory() {
	ctx := context.Background()
	client, err := distlock.Open(ctx, "postgres://app@db.internal/app?mode=advisory")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
}
