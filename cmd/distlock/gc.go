package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/distlock/distlock"
)

// defaultPurgeAge is how long a key must have been free before gc deletes
// its record when --older-than is not given.
const defaultPurgeAge = 24 * time.Hour

// gc is "distlock gc": it deletes what the store keeps of keys that have
// been free for at least --older-than by the store's clock (the SQL stores
// keep a row, with its fence, for every key ever locked), and prints how
// many records went. Stores that keep nothing of free keys have nothing to
// purge: that is said, and gc exits 0.
func (c *cli) gc(ctx context.Context, args []string) int {
	var (
		store string
		age   = ageFlag(defaultPurgeAge)
	)
	fs := gcFlags(&store, &age)
	fs.SetOutput(c.stderr)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return c.usageError("gc", "unexpected argument %q", fs.Arg(0))
	}
	if d := time.Duration(age); d < distlock.MinPurgeAge {
		return c.usageError("gc", "--older-than %v is below the minimum of %v: a store clock stepping back by more could repeat a fence", d, distlock.MinPurgeAge)
	}
	storeOK := given(fs, "store")

	client, code := c.open(ctx, store, storeOK)
	if client == nil {
		return code
	}
	defer c.closeClient(client)
	n, err := client.Purge(ctx, time.Duration(age))
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		fmt.Fprintf(c.stdout, "nothing to purge: the %s store keeps nothing of free keys\n", client.Backend())
		return exitOK
	case err != nil:
		c.errorf("%s", trimPrefix(err))
		return errorCode(err)
	}
	records := "records"
	if n == 1 {
		records = "record"
	}
	fmt.Fprintf(c.stdout, "purged %d %s of keys free for %v or longer\n", n, records, time.Duration(age))
	return exitOK
}

func gcFlags(store *string, age *ageFlag) *flag.FlagSet {
	fs := flag.NewFlagSet("distlock gc", flag.ContinueOnError)
	fs.Usage = func() { writeGCUsage(fs.Output(), fs) }
	fs.StringVar(store, "store", "", "store `URL` (default: $DISTLOCK_STORE, else the default SQLite store)")
	fs.Var(age, "older-than", "purge keys free for at least this `age` by the store's clock: a duration (36h, 90m) or a number of seconds")
	return fs
}

func writeGCUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `usage: distlock gc [--store URL] [--older-than D]

Deletes what the store keeps of keys that nobody has held for at least
--older-than (default %v) by the store's clock, and prints how many records
it deleted. The SQL stores (sqlite, postgres, mysql) keep a row, with its
fence, for every key ever locked; a purged key starts again from the store's
clock, above its old fence, as long as that clock never steps back by the
age or more (the least is %v). Held keys are never touched. Other stores
keep nothing of free keys: gc says so and exits 0. One statement, which
reads the whole table: run it now and then (from cron, say).

Flags:
`, defaultPurgeAge, distlock.MinPurgeAge)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// ageFlag is --older-than: a Go duration, or a bare number of seconds.
type ageFlag time.Duration

func (a *ageFlag) String() string { return time.Duration(*a).String() }

func (a *ageFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || secs > math.MaxInt64/float64(time.Second) {
			return errors.New("want a duration such as 36h or 90m, or a number of seconds")
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return errors.New("must not be negative")
	}
	*a = ageFlag(d)
	return nil
}
