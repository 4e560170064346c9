package redlock

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
	"github.com/distlock/distlock/internal/rediswire"
)

// Scheme is the URL scheme this package registers with distlock.Open.
const Scheme = "redlock"

// DefaultPort is the port of a node given without one.
const DefaultPort = "6379"

func init() {
	distlock.Register(Scheme, openURL)
}

func openURL(ctx context.Context, u *url.URL) (driver.Driver, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return openNodes(ctx, cfg.nodes, cfg.opts)
}

// urlForm is how URL errors end: the form that works.
const urlForm = "use redlock://[user:password@]host1:port1,host2:port2,host3:port3[/db][?prefix=...&tls=true&node_timeout=20ms]"

// The query parameters this package reads itself. Every other parameter
// goes to go-redis's redis.ParseURL for each node (db, dial_timeout,
// read_timeout, pool_size, skip_verify, ...), which refuses unknown ones.
const (
	paramPrefix      = "prefix"
	paramTLS         = "tls"
	paramNodeTimeout = "node_timeout"
)

// urlConfig is what a redlock URL says.
type urlConfig struct {
	nodes []*redis.Options // one per node, in URL order
	opts  Options
}

// parseURL reads a redlock URL:
//
//	redlock://[user:password@]host1[:port1],host2[:port2],...[/db][?params]
//
// Every node gets the same credentials, database and go-redis options.
func parseURL(u *url.URL) (urlConfig, error) {
	bad := func(format string, args ...any) (urlConfig, error) {
		return urlConfig{}, fmt.Errorf("%w: redlock URL: "+format, append([]any{distlock.ErrInvalid}, args...)...)
	}
	switch {
	case u.Opaque != "":
		return bad("no nodes (%s)", urlForm)
	case u.Host == "":
		return bad("no nodes (%s)", urlForm)
	case u.Fragment != "" || u.RawFragment != "":
		return bad("fragment %q is not allowed (%s)", u.Fragment, urlForm)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	for name, vals := range q {
		if len(vals) > 1 {
			return bad("parameter %s is given %d times", name, len(vals))
		}
	}
	for _, secret := range []string{"password", "user", "username"} {
		if q.Has(secret) {
			return bad("parameter %s is not accepted: give credentials as user:password@ before the hosts, where they are redacted from errors and logs", secret)
		}
	}
	var cfg urlConfig
	scheme := "redis"
	if q.Has(paramTLS) {
		v := q.Get(paramTLS)
		on, err := strconv.ParseBool(v)
		if err != nil {
			return bad("tls=%q: want true or false", v)
		}
		if on {
			scheme = "rediss"
		}
		q.Del(paramTLS)
	}
	if q.Has(paramPrefix) {
		cfg.opts.Prefix = q.Get(paramPrefix)
		q.Del(paramPrefix)
	}
	if q.Has(paramNodeTimeout) {
		v := q.Get(paramNodeTimeout)
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return bad("node_timeout=%q: want a positive duration such as 20ms", v)
		}
		cfg.opts.NodeTimeout = d
		q.Del(paramNodeTimeout)
	}
	if err := rediswire.TakeContextTimeout(q); err != nil {
		return bad("%v", err)
	}
	setRetries := !q.Has("max_retries")

	hosts := strings.Split(u.Host, ",")
	seen := make(map[string]string, len(hosts))
	for _, h := range hosts {
		if h == "" {
			return bad("empty node in %q (%s)", u.Host, urlForm)
		}
		id, addr, err := nodeID(h)
		if err != nil {
			return bad("node %q: %v (%s)", h, err, urlForm)
		}
		if first, dup := seen[id]; dup {
			return urlConfig{}, duplicateNode(first, h)
		}
		seen[id] = h
		nu := url.URL{Scheme: scheme, User: u.User, Host: addr, Path: u.Path, RawQuery: q.Encode()}
		o, err := redis.ParseURL(nu.String())
		if err != nil {
			// go-redis's messages name the bad option but never the
			// password; say which URL part it was.
			return bad("node %s: %v", h, err)
		}
		if setRetries {
			// One attempt per node: the portable layer retries, and a
			// retry could not fit in a node's time limit anyway.
			o.MaxRetries = -1
		}
		// One dial per request: go-redis's default of 5 dials 100ms apart
		// would turn a refused connection (surely nothing done) into a
		// timeout (outcome unknown) at any per-node limit.
		o.DialerRetries = 1
		// Per-node time limits are contexts: let them bound the socket
		// reads, not only the wait.
		o.ContextTimeoutEnabled = true
		cfg.nodes = append(cfg.nodes, o)
	}
	if err := checkCount(len(cfg.nodes)); err != nil {
		return urlConfig{}, err
	}
	return cfg, nil
}

// checkCount refuses node counts that cannot make a sound majority.
func checkCount(n int) error {
	switch {
	case n < 3:
		return fmt.Errorf("%w: redlock needs at least 3 independent Redis nodes, got %d (for one node use redis://)", distlock.ErrInvalid, n)
	case n%2 == 0:
		return fmt.Errorf("%w: redlock needs an odd number of nodes, got %d (an even count tolerates no more failures than one node fewer)", distlock.ErrInvalid, n)
	}
	return nil
}

// duplicateNode is the error for a node given twice: it would vote twice,
// and two votes from one server make a false majority.
func duplicateNode(first, again string) error {
	if first == again {
		return fmt.Errorf("%w: redlock node %s is given twice: it would vote twice", distlock.ErrInvalid, again)
	}
	return fmt.Errorf("%w: redlock nodes %s and %s are the same node: it would vote twice", distlock.ErrInvalid, first, again)
}

// nodeID normalises one host[:port] of a URL. It returns the identity that
// duplicates are detected by and the address to dial (the port filled in).
// Host names are compared case-insensitively without a trailing dot, IP
// addresses in canonical form (an IPv4-mapped IPv6 address as IPv4), and
// localhost as 127.0.0.1. Names are not resolved through DNS: two names for
// one server are caught when the driver is opened, by the servers' run_id.
func nodeID(hostport string) (id, addr string, err error) {
	host, port := hostport, DefaultPort
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	} else if strings.Count(hostport, ":") > 0 && !strings.HasPrefix(hostport, "[") {
		return "", "", err
	}
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if host == "" {
		return "", "", fmt.Errorf("no host")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", "", fmt.Errorf("port %q is not a number in 1..65535", port)
	}
	port = strconv.FormatUint(n, 10)
	addr = net.JoinHostPort(host, port)
	canon := strings.ToLower(host)
	if ip := net.ParseIP(host); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		canon = ip.String()
	} else if canon == "localhost" {
		canon = "127.0.0.1"
	}
	return net.JoinHostPort(canon, port), addr, nil
}

// parseStoreURL parses a redlock URL given as a string (OpenDriver).
func parseStoreURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		msg := err.Error()
		if ue, ok := err.(*url.Error); ok {
			msg = ue.Err.Error()
		}
		return nil, fmt.Errorf("%w: malformed redlock URL %s: %s", distlock.ErrInvalid, distlock.RedactURL(s), distlock.RedactURL(msg))
	}
	if !strings.EqualFold(u.Scheme, Scheme) {
		return nil, fmt.Errorf("%w: URL scheme %q is not %s (%s)", distlock.ErrInvalid, u.Scheme, Scheme, urlForm)
	}
	return u, nil
}
