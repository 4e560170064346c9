package rediswire

import (
	"embed"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The scripts are the wire protocol: lua/fence.lua holds the fence rule,
// written once, and every script that grants a lock begins with it, then
// runs its own fast path; lua/prelude.lua holds the helpers of the slower
// paths, spliced in where the script's "--[[ prelude ]]" line stands, so
// that the common case does not pay for defining them. The package
// documentation shows them all.
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

// preludeMark is the line of a granting script where the prelude goes.
const preludeMark = "--[[ prelude ]]\n"

// granting is a script that may grant a lock: the fence rule, then its
// body with the prelude in place of its mark.
func granting(name string) *redis.Script {
	body := lua(name)
	if !strings.Contains(body, preludeMark) {
		panic("rediswire: " + name + " has no prelude mark") // embedded: cannot happen
	}
	return redis.NewScript(lua("fence.lua") + strings.Replace(body, preludeMark, lua("prelude.lua"), 1))
}

var (
	acquireScript = granting("acquire.lua")
	enqueueScript = granting("enqueue.lua")
	releaseScript = granting("release.lua")
	leaveScript   = granting("leave.lua")
	renewScript   = redis.NewScript(lua("renew.lua"))
	inspectScript = redis.NewScript(lua("inspect.lua"))
)
