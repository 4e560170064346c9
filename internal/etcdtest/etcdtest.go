// Package etcdtest starts embedded etcd servers (go.etcd.io/etcd/server/v3/embed)
// inside a test binary, so that the etcd driver's tests talk to a real etcd
// and can stop and restart its members.
//
//	c := etcdtest.Start(t)              // one member
//	c := etcdtest.StartCluster(t, 3)    // three members, always private
//	cli := c.Client(t)                  // a clientv3.Client on every member
//	c.Member(c.Leader(t)).Stop()        // stop the leader ...
//	c.Member(i).Restart()               // ... and bring it back
//
// Members listen on free loopback ports (127.0.0.1), keep their data in
// t.TempDir(), run without fsync (a test does not need durability across a
// power cut, and fsync on a shared disk makes every write slow) and log
// nothing. They are closed when the test ends.
//
// DISTLOCK_TEST_ETCD=host:port[,host:port...] makes Start use that existing
// cluster instead; Stop and Restart then skip the test, and StartCluster
// still starts a private cluster, since its tests stop members.
//
// This package is kept apart from internal/testserver so that only test
// binaries that ask for an embedded etcd link etcd's server.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/distlock/distlock/internal/testenv"
)

// EnvVar names an existing cluster's endpoints for Start.
const EnvVar = "DISTLOCK_TEST_ETCD"

// startTimeout bounds how long a cluster may take to elect a leader.
const startTimeout = 30 * time.Second

// Cluster is a running etcd cluster: private members, or an external one.
type Cluster struct {
	t         testing.TB
	members   []*Member
	endpoints []string // of an external cluster
}

// Member is one embedded etcd server.
type Member struct {
	t       testing.TB
	name    string
	cfg     *embed.Config
	client  url.URL
	mu      sync.Mutex
	e       *embed.Etcd // nil while stopped
	stopped bool
}

// Start returns a one-member cluster, or the external cluster that
// DISTLOCK_TEST_ETCD names.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if env := strings.TrimSpace(os.Getenv(EnvVar)); env != "" {
		var eps []string
		for _, ep := range strings.Split(env, ",") {
			if ep = strings.TrimSpace(ep); ep != "" {
				eps = append(eps, ep)
			}
		}
		c := &Cluster{t: t, endpoints: eps}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cli := c.Client(t)
		if _, err := cli.Get(ctx, "distlock-etcdtest-probe"); err != nil {
			testenv.Unavailable(t, "etcdtest: %s=%s does not answer: %v", EnvVar, env, err)
		}
		return c
	}
	return StartCluster(t, 1)
}

// StartCluster starts n private members that form one cluster, and waits
// until they have a leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	var lastErr error
	for range 5 { // a port taken between discovery and bind: try others
		c, err := startCluster(t, n)
		if err == nil {
			return c
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("etcdtest: starting %d members: %v", n, lastErr)
	return nil
}

func startCluster(t testing.TB, n int) (*Cluster, error) {
	c := &Cluster{t: t}
	var initial []string
	peers := make([]url.URL, n)
	for i := range n {
		m := &Member{t: t, name: fmt.Sprintf("m%d", i)}
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		m.client = url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}
		peers[i] = url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}
		initial = append(initial, m.name+"="+peers[i].String())
		c.members = append(c.members, m)
	}
	token := fmt.Sprintf("distlock-etcdtest-%d", time.Now().UnixNano())
	for i, m := range c.members {
		cfg := embed.NewConfig()
		cfg.Name = m.name
		cfg.Dir = t.TempDir()
		cfg.ListenClientUrls = []url.URL{m.client}
		cfg.AdvertiseClientUrls = []url.URL{m.client}
		cfg.ListenPeerUrls = []url.URL{peers[i]}
		cfg.AdvertisePeerUrls = []url.URL{peers[i]}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = token
		cfg.UnsafeNoFsync = true
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		m.cfg = cfg
	}
	// Members of a new cluster wait for each other: start them all, then
	// wait for each to be ready.
	var errs []error
	for _, m := range c.members {
		e, err := embed.StartEtcd(m.cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("member %s: %w", m.name, err))
			continue
		}
		m.e = e
	}
	if err := errors.Join(errs...); err != nil {
		c.close()
		return nil, err
	}
	for _, m := range c.members {
		if err := m.waitReady(); err != nil {
			c.close()
			return nil, err
		}
	}
	t.Cleanup(c.close)
	return c, nil
}

func (c *Cluster) close() {
	var wg sync.WaitGroup
	for _, m := range c.members {
		wg.Go(func() { m.stop() })
	}
	wg.Wait()
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// External reports whether the cluster is an existing one named by
// DISTLOCK_TEST_ETCD.
func (c *Cluster) External() bool { return c.members == nil }

// Endpoints returns every member's client address (host:port).
func (c *Cluster) Endpoints() []string {
	if c.External() {
		return c.endpoints
	}
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.Endpoint()
	}
	return eps
}

// Size is the number of members (0 for an external cluster).
func (c *Cluster) Size() int { return len(c.members) }

// Member returns member i. It skips the test on an external cluster.
func (c *Cluster) Member(i int) *Member {
	c.t.Helper()
	if c.External() {
		c.t.Skipf("etcdtest: the test controls members, but %s names an external cluster; unset it", EnvVar)
	}
	return c.members[i]
}

// Client returns a client on every endpoint, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return c.ClientOn(t, c.Endpoints()...)
}

// ClientOn returns a client on the given endpoints, closed when the test
// ends.
func (c *Cluster) ClientOn(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcdtest: client on %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader returns the index of the member that leads, waiting up to 30s
// for the running members to agree on one.
func (c *Cluster) Leader(t testing.TB) int {
	t.Helper()
	if c.External() {
		t.Skipf("etcdtest: leader lookup needs a private cluster; %s names an external one", EnvVar)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		for i, m := range c.members {
			m.mu.Lock()
			e := m.e
			m.mu.Unlock()
			if e != nil && e.Server.Leader() == e.Server.MemberID() {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcdtest: no leader among the running members after %v", startTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Endpoint returns the member's client address (host:port).
func (m *Member) Endpoint() string { return m.client.Host }

// Name returns the member's name (m0, m1, ...).
func (m *Member) Name() string { return m.name }

// Stop closes the member as a graceful shutdown would: its clients are
// disconnected and the port is freed. Its data stays for Restart.
func (m *Member) Stop() {
	m.t.Helper()
	m.stop()
}

func (m *Member) stop() {
	m.mu.Lock()
	e := m.e
	m.e = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts a stopped member again on the same ports and data; it
// rejoins its cluster. It does not wait for the cluster to have a leader
// (a lone member of three cannot elect one); use Ready for that.
func (m *Member) Restart() {
	m.t.Helper()
	m.stop()
	var err error
	for range 50 { // the port may linger a moment after Close
		var e *embed.Etcd
		e, err = embed.StartEtcd(m.cfg)
		if err == nil {
			m.mu.Lock()
			m.e = e
			m.mu.Unlock()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("etcdtest: restarting member %s: %v", m.name, err)
}

// Ready waits until the member has joined a cluster with a leader.
func (m *Member) Ready() {
	m.t.Helper()
	if err := m.waitReady(); err != nil {
		m.t.Fatal(err)
	}
}

func (m *Member) waitReady() error {
	m.mu.Lock()
	e := m.e
	m.mu.Unlock()
	if e == nil {
		return fmt.Errorf("etcdtest: member %s is stopped", m.name)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcdtest: member %s: %w", m.name, err)
	case <-time.After(startTimeout):
		return fmt.Errorf("etcdtest: member %s not ready after %v", m.name, startTimeout)
	}
	deadline := time.Now().Add(startTimeout)
	for e.Server.Leader() == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("etcdtest: member %s sees no leader after %v", m.name, startTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
