package main

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// go-redis logs each failed dial of its pool on the standard logger: four
// lines before distlock's own message when a store is down. The CLI reports
// the store's error itself, once, with its exit code.
func init() { redis.SetLogger(quietRedis{}) }

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
