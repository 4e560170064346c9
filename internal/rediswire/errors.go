package rediswire

import (
	"errors"
	"fmt"
	"net"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/driver"
)

// Classify wraps err with driver.ErrUnavailable when the request surely never
// reached the server: the dial failed, the pool timed out waiting for a
// connection, or the client is closed. Other errors are returned unchanged
// (their outcome is unknown). Redis error replies are returned unchanged too.
func Classify(err error) error {
	if err == nil || errors.Is(err, driver.ErrUnavailable) {
		return err
	}
	if Unsent(err) {
		return fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
	}
	return err
}

// Unsent reports whether err means the request was never sent (an error
// that wraps driver.ErrUnavailable says so already).
func Unsent(err error) bool {
	if errors.Is(err, driver.ErrUnavailable) || errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
