package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/distlock/distlock"
)

// cli is one invocation of distlock: its streams and environment.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer // safe for concurrent use: CMD, the library's logger and distlock share it
	tty    bool      // stderr is a terminal: progress messages are worth printing
	getenv func(string) string
}

// run is the whole program: main only calls it and exits with its result.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, tty: isTerminal(stderr), getenv: os.Getenv}
	if _, ok := stderr.(*os.File); !ok {
		// CMD writes through a copying goroutine when its stderr is not a
		// file; serialize that with distlock's own messages.
		c.stderr = &syncWriter{w: stderr}
	}
	if len(args) == 0 {
		fmt.Fprint(c.stderr, shortUsage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		return c.run(ctx, rest)
	case "status":
		return c.status(ctx, rest)
	case "migrate":
		return c.migrate(ctx, rest)
	case "gc":
		return c.gc(ctx, rest)
	case "help", "-h", "-help", "--help":
		return c.help(rest)
	case "version", "-version", "--version":
		fmt.Fprintf(c.stdout, "distlock %s\n", version())
		return exitOK
	default:
		c.errorf("unknown command %q", cmd)
		fmt.Fprint(c.stderr, shortUsage)
		return exitUsage
	}
}

// errorf prints one "distlock: ..." line on stderr.
func (c *cli) errorf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "distlock: "+format+"\n", args...)
}

// usageError prints a usage mistake and how to get help; it returns exitUsage.
func (c *cli) usageError(sub, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "distlock %s: %s\n", sub, fmt.Sprintf(format, args...))
	fmt.Fprintf(c.stderr, "Run 'distlock help %s' for usage.\n", sub)
	return exitUsage
}

// logger receives the library's warnings (renewal failures, losses).
func (c *cli) logger() *slog.Logger {
	return slog.New(&warnHandler{mu: new(sync.Mutex), w: c.stderr})
}

// open connects to the store chosen by --store, $DISTLOCK_STORE or the
// default. On failure it prints why and returns the exit code.
func (c *cli) open(ctx context.Context, flagValue string, flagGiven bool) (*distlock.Client, int) {
	store, err := chooseStore(flagValue, flagGiven, c.getenv)
	if err != nil {
		c.errorf("%v", err)
		return nil, exitUsage
	}
	client, err := distlock.Open(ctx, store, distlock.WithLogger(c.logger()))
	if err != nil {
		c.errorf("%s", trimPrefix(err))
		return nil, errorCode(err)
	}
	return client, exitOK
}

// closeClient closes client, printing a warning if that fails.
func (c *cli) closeClient(client *distlock.Client) {
	if err := client.Close(); err != nil {
		c.errorf("warning: %s", trimPrefix(err))
	}
}

// errorCode maps a library error other than contention to an exit code.
func errorCode(err error) int {
	if errors.Is(err, distlock.ErrInvalid) {
		return exitUsage
	}
	return exitUnavailable
}

// flagAfterKey returns the first of words that names one of fs's flags
// ("-wait", "--wait=0"), or "".
func flagAfterKey(fs *flag.FlagSet, words []string) string {
	for _, w := range words {
		name, ok := strings.CutPrefix(w, "-")
		if !ok {
			continue
		}
		name = strings.TrimPrefix(name, "-")
		name, _, _ = strings.Cut(name, "=")
		if fs.Lookup(name) != nil {
			return w
		}
	}
	return ""
}

// isTerminal reports whether w is an interactive terminal. In-process tests
// pass writers with an isTerminal method to play one.
func isTerminal(w io.Writer) bool {
	switch w := w.(type) {
	case interface{ isTerminal() bool }:
		return w.isTerminal()
	case *os.File:
		fi, err := w.Stat()
		return err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return false
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// parse parses args into fs. When the command must end here (-h, or a
// mistake the flag package has already printed), ok is false and code is
// the exit status.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return exitOK, true
}

// given reports whether the flag name was set on the command line.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
