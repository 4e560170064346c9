package distlock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/distlock/distlock"
	_ "github.com/distlock/distlock/sqlitelock" // registers sqlite://
)

// storeURL returns a SQLite store in a fresh temporary directory, so the
// examples run anywhere without a server.
func storeURL() (string, func()) {
	dir, err := os.MkdirTemp("", "distlock-example")
	if err != nil {
		log.Fatal(err)
	}
	return "sqlite://" + filepath.ToSlash(filepath.Join(dir, "locks.db")), func() { os.RemoveAll(dir) }
}

func ExampleOpen() {
	url, cleanup := storeURL()
	defer cleanup()
	ctx := context.Background()

	client, err := distlock.Open(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	fmt.Println(client.Backend())
	// Output: sqlite
}

func ExampleClient_Do() {
	url, cleanup := storeURL()
	defer cleanup()
	ctx := context.Background()
	client, err := distlock.Open(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// Do waits for the lock, runs the function and releases the lock. The
	// function's ctx is cancelled if the lock is lost while it runs.
	err = client.Do(ctx, "reports/nightly", func(ctx context.Context) error {
		fmt.Println("building the nightly report")
		return nil
	}, distlock.WithTTL(30*time.Second))
	fmt.Println("err:", err)
	// Output:
	// building the nightly report
	// err: <nil>
}

func ExampleClient_TryLock() {
	url, cleanup := storeURL()
	defer cleanup()
	ctx := context.Background()
	a, _ := distlock.Open(ctx, url)
	defer a.Close()
	b, _ := distlock.Open(ctx, url)
	defer b.Close()

	held, err := a.TryLock(ctx, "invoice:42", distlock.WithOwner("worker-a"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = b.TryLock(ctx, "invoice:42")
	fmt.Println("second holder locked out:", errors.Is(err, distlock.ErrLocked))

	held.Unlock(ctx)
	again, err := b.TryLock(ctx, "invoice:42")
	fmt.Println("after unlock:", err == nil, again.Fence() > held.Fence())
	again.Unlock(ctx)
	// Output:
	// second holder locked out: true
	// after unlock: true true
}

func ExampleClient_Lock() {
	url, cleanup := storeURL()
	defer cleanup()
	ctx := context.Background()
	client, _ := distlock.Open(ctx, url)
	defer client.Close()

	// The timeout bounds the waiting only, not the life of the lock.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lock, err := client.Lock(waitCtx, "migrations")
	if err != nil {
		log.Fatal(err)
	}
	defer lock.Unlock(ctx)

	// Hand the fence to the resource you protect; it rejects smaller ones.
	fmt.Println("fence is set:", lock.Fence() > 0)
	select {
	case <-lock.Done():
		fmt.Println("lost:", lock.Err())
	default:
		fmt.Println("still held")
	}
	// Output:
	// fence is set: true
	// still held
}

func ExampleClient_Status() {
	url, cleanup := storeURL()
	defer cleanup()
	ctx := context.Background()
	client, _ := distlock.Open(ctx, url)
	defer client.Close()

	lock, _ := client.TryLock(ctx, "backup", distlock.WithOwner("db-host-1"))
	st, err := client.Status(ctx, "backup")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Held, st.Owner, st.Fence == lock.Fence())
	lock.Unlock(ctx)
	st, _ = client.Status(ctx, "backup")
	fmt.Println(st.Held)
	// Output:
	// true db-host-1 true
	// false
}
