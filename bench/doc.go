// Package bench holds the Redis comparisons that need other lock libraries:
// interop tests with redsync and bsm/redislock, and the side-by-side
// benchmark runner. It is a module of its own, so those libraries never
// enter distlock's go.mod.
package bench
