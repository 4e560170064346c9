package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/distlock/distlock"
)

// statusJSON is what status --json prints: distlock.Status with its TTL in
// milliseconds.
type statusJSON struct {
	Key   string `json:"key"`
	Held  bool   `json:"held"`
	Owner string `json:"owner,omitempty"`
	Fence uint64 `json:"fence,omitempty"`
	TTLms int64  `json:"ttl_ms,omitempty"` // time left by the store's clock; absent if unknown
}

// status is "distlock status": who holds KEY. It exits 0 whether the key is
// held or free.
func (c *cli) status(ctx context.Context, args []string) int {
	var (
		store  string
		asJSON bool
	)
	fs := statusFlags(&store, &asJSON)
	fs.SetOutput(c.stderr)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	storeOK := given(fs, "store")
	rest := fs.Args()
	late := ""
	if len(rest) > 1 {
		late = flagAfterKey(fs, rest[1:])
	}
	switch {
	case len(rest) == 0:
		return c.usageError("status", "missing KEY")
	case late != "":
		return c.usageError("status", "flag %s comes after KEY %q: flags must come before KEY", late, rest[0])
	case len(rest) > 1:
		return c.usageError("status", "expected one KEY, got %d words %q", len(rest), rest)
	}
	key := rest[0]
	if err := distlock.ValidateKey(key); err != nil {
		return c.usageError("status", "%s", trimPrefix(err))
	}

	client, code := c.open(ctx, store, storeOK)
	if client == nil {
		return code
	}
	defer c.closeClient(client)
	st, err := client.Status(ctx, key)
	if err != nil {
		c.errorf("%s", trimPrefix(err))
		return errorCode(err)
	}
	if asJSON {
		err = writeStatusJSON(c.stdout, st)
	} else {
		err = writeStatusText(c.stdout, st)
	}
	if err != nil {
		c.errorf("writing status: %v", err)
		return exitUnavailable
	}
	return exitOK
}

// statusFlags defines the flags of distlock status.
func statusFlags(store *string, asJSON *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("distlock status", flag.ContinueOnError)
	fs.Usage = func() { writeStatusUsage(fs.Output(), fs) }
	fs.StringVar(store, "store", "", "store `URL` (default: $DISTLOCK_STORE, else the default SQLite store)")
	fs.BoolVar(asJSON, "json", false, "print JSON: key, held, owner, fence, ttl_ms (time left in milliseconds)")
	return fs
}

func writeStatusJSON(w io.Writer, st distlock.Status) error {
	out := statusJSON{Key: st.Key, Held: st.Held, Owner: st.Owner, Fence: st.Fence}
	if st.TTL > 0 {
		out.TTLms = (st.TTL + time.Millisecond - 1).Milliseconds() // round up: held is never shown as 0
	}
	return json.NewEncoder(w).Encode(out)
}

func writeStatusText(w io.Writer, st distlock.Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "key:\t%s\n", st.Key)
	if !st.Held {
		fmt.Fprintf(tw, "state:\tfree\n")
		return tw.Flush()
	}
	fmt.Fprintf(tw, "state:\theld\n")
	fmt.Fprintf(tw, "owner:\t%s\n", st.Owner)
	fmt.Fprintf(tw, "fence:\t%d\n", st.Fence)
	left := "unknown"
	if st.TTL > 0 {
		left = st.TTL.Round(time.Millisecond).String()
	}
	fmt.Fprintf(tw, "time left:\t%s\n", left)
	return tw.Flush()
}
