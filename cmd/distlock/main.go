package main

import (
	"context"
	"os"
)

func main() {
	// The hidden supervisor of CMD's tree is this binary too (tree_unix.go).
	superviseIfAsked()
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
