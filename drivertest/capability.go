package drivertest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/distlock/distlock/driver"
)

// Transport is the optional interface of a Harness whose store is reached
// over TCP. With it the suite puts a fault proxy (package netfault) in
// front of each server and runs the transport cases: Clients that reach the
// store through the proxies, whose network the case stalls, black-holes,
// slows or cuts, beside Clients that reach it directly.
type Transport interface {
	// Addrs returns the host:port of every server a driver of the store
	// talks to, always in the same order (a Redlock's nodes, an etcd
	// cluster's members).
	Addrs() []string
	// NewDriverVia returns a fresh driver as NewDriver does, except that it
	// reaches server i at via[i] instead of Addrs()[i]. The suite closes it.
	NewDriverVia(ctx context.Context, t *testing.T, via []string) (driver.Driver, error)
}

// Restarter is the optional interface of a Harness that can restart its
// store.
type Restarter interface {
	// Restart stops every server of the store and starts it again on the
	// same addresses, keeping what the store persists, as an operator's
	// restart or an upgrade does; it returns once the store answers again.
	Restart(ctx context.Context, t *testing.T) error
}

// Rollbacker is the optional interface of a Harness that can bring its
// store back to an earlier state.
type Rollbacker interface {
	// Snapshot records the store's lock data now and returns a function
	// that brings the store back to it, as a restore from a backup, or a
	// failover to a replica that missed the writes since, does. The suite
	// calls rollback once, while none of its Clients holds a lock.
	Snapshot(ctx context.Context, t *testing.T) (rollback func(context.Context) error, err error)
}

// Lacker is the optional interface of a Harness that explains why it does
// not offer a capability. The suite prints the reasons in its log.
type Lacker interface {
	// Lacks maps a capability the harness does not offer ("transport",
	// "restart", "rollback") to why.
	Lacks() map[string]string
}

// Capability names, as in a case's needs and a Lacker's map.
const (
	capTransport = "transport"
	capRestart   = "restart"
	capRollback  = "rollback"
)

// capabilities are the optional interfaces a harness implements.
type capabilities struct {
	transport  Transport
	restarter  Restarter
	rollbacker Rollbacker
	lacks      map[string]string
}

func capabilitiesOf(h Harness) capabilities {
	var c capabilities
	c.transport, _ = h.(Transport)
	c.restarter, _ = h.(Restarter)
	c.rollbacker, _ = h.(Rollbacker)
	if l, ok := h.(Lacker); ok {
		c.lacks = l.Lacks()
	}
	return c
}

// has reports whether the harness offers capability name ("" is always
// offered).
func (c capabilities) has(name string) bool {
	switch name {
	case "":
		return true
	case capTransport:
		return c.transport != nil
	case capRestart:
		return c.restarter != nil
	case capRollback:
		return c.rollbacker != nil
	}
	return false
}

// why says why the harness does not offer capability name.
func (c capabilities) why(name string) string {
	if r := c.lacks[name]; r != "" {
		return r
	}
	iface := map[string]string{capTransport: "Transport", capRestart: "Restarter", capRollback: "Rollbacker"}[name]
	return fmt.Sprintf("the harness does not implement drivertest.%s", iface)
}

// String is the capabilities line of the suite's log.
func (c capabilities) String() string {
	var have, lack []string
	for _, name := range []string{capTransport, capRestart, capRollback} {
		switch {
		case !c.has(name):
			lack = append(lack, fmt.Sprintf("no %s (%s)", name, c.why(name)))
		case name == capTransport:
			n := len(c.transport.Addrs())
			have = append(have, fmt.Sprintf("transport (%d server%s behind fault proxies)", n, map[bool]string{true: "s"}[n != 1]))
		default:
			have = append(have, name)
		}
	}
	// A Lacker may name capabilities of its own, such as a fault the
	// backend cannot be put through.
	var extra []string
	for name, why := range c.lacks {
		if name != capTransport && name != capRestart && name != capRollback {
			extra = append(extra, fmt.Sprintf("no %s (%s)", name, why))
		}
	}
	sort.Strings(extra)
	if len(have) == 0 {
		have = []string{"none beyond NewDriver and Evict"}
	}
	return strings.Join(append(append(have, lack...), extra...), "; ")
}
