package rediswire

import (
	"embed"

	"github.com/redis/go-redis/v9"
)

// The scripts are the wire protocol: lua/prelude.lua holds what every
// script that grants a lock shares (the fence rule above all, written once),
// and each of those scripts is the prelude followed by its own file. The
// package documentation shows them all.
//
//go:embed lua/*.lua
var luaFiles embed.FS

func lua(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name)
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	return string(b)
}

// granting is a script that may grant a lock: the prelude, then its body.
func granting(name string) *redis.Script { return redis.NewScript(lua("prelude.lua") + lua(name)) }

var (
	acquireScript = granting("acquire.lua")
	enqueueScript = granting("enqueue.lua")
	releaseScript = granting("release.lua")
	leaveScript   = granting("leave.lua")
	renewScript   = redis.NewScript(lua("renew.lua"))
	inspectScript = redis.NewScript(lua("inspect.lua"))
)
