package mysqllock_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	_ "github.com/go-sql-driver/mysql"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/mysqllock"
)

// Open connects with a go-sql-driver/mysql DSN; the table is created on
// first use.
func ExampleOpen() {
	ctx := context.Background()
	client, err := mysqllock.Open(ctx, "app:secret@tcp(db.internal:3306)/app", nil)
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

// New uses the *sql.DB the application already has.
func ExampleNew() {
	ctx := context.Background()
	db, err := sql.Open("mysql", "app:secret@tcp(db.internal:3306)/app")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	client, err := mysqllock.New(ctx, db, nil)
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

// With the package imported, distlock.Open takes mysql:// URLs, translated
// to the driver's DSN.
func Example_url() {
	ctx := context.Background()
	client, err := distlock.Open(ctx, "mysql://app:secret@db.internal:3306/app?tls=true&mode=getlock")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
}
