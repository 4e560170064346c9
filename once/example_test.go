package once_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/distlock/distlock/once"
)

// The seed's "first check-in of the day": the key is the business key, user
// and date, never a random or auto-increment id, so that every server
// handling the same user's check-in that day claims the same row, and the
// points are awarded once however often the request is retried.
func Example_checkIn() {
	dir, err := os.MkdirTemp("", "once-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	// In production: once.Open(ctx, "postgres://app@db/app") or
	// "mysql://app:secret@db:3306/app", or once.New over your *sql.DB.
	g, err := once.Open(ctx, "sqlite://"+filepath.ToSlash(filepath.Join(dir, "once.db")))
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()

	checkIn := func(user string, day time.Time) {
		key := "checkin:" + user + ":" + day.Format(time.DateOnly)
		points, ran, err := g.Do(ctx, key, func(ctx context.Context) ([]byte, error) {
			// Award the day's points here (write them with the claim's
			// fence if the ledger can check it). Runs once per key.
			return []byte("10"), nil
		})
		switch {
		case errors.Is(err, once.ErrInProgress):
			fmt.Println(user, "is checking in on another server right now")
		case err != nil:
			fmt.Println(user, "check-in failed:", err)
		case ran:
			fmt.Printf("%s: first check-in on %s, +%s points\n", user, day.Format(time.DateOnly), points)
		default:
			fmt.Printf("%s: already checked in on %s (%s points)\n", user, day.Format(time.DateOnly), points)
		}
	}

	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	checkIn("alice", day)
	checkIn("alice", day) // a retry, or a second tap
	checkIn("bob", day)
	checkIn("alice", day.AddDate(0, 0, 1))
	// Output:
	// alice: first check-in on 2026-11-24, +10 points
	// alice: already checked in on 2026-11-24 (10 points)
	// bob: first check-in on 2026-11-24, +10 points
	// alice: first check-in on 2026-11-25, +10 points
}

// New takes the *sql.DB the application already has. Claim gives the fence
// to pass to the resource the work writes, and Complete records the outcome.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "once-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	g, err := once.New(db, once.SQLite) // once.Postgres, once.MySQL
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()

	c, err := g.Claim(ctx, "invoice:2026-11:customer-42", once.WithTTL(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("claimed with a fence:", c.Fence() > 0)
	// ... send the invoice, passing c.Fence() along; stop if c.Done() closes ...
	if err := c.Complete(ctx, []byte("INV-1001")); err != nil {
		log.Fatal(err)
	}

	_, err = g.Claim(ctx, "invoice:2026-11:customer-42")
	var done *once.DoneError
	if errors.As(err, &done) {
		fmt.Printf("already done: %s\n", done.Result)
	}
	// Output:
	// claimed with a fence: true
	// already done: INV-1001
}
