package etcdlock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// Scheme is the URL scheme this package registers with distlock.Open.
const Scheme = "etcd"

func init() {
	distlock.Register(Scheme, openURL)
}

func openURL(ctx context.Context, u *url.URL) (driver.Driver, error) {
	cfg, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	return OpenDriver(ctx, cfg)
}

// The query parameters an etcd URL accepts.
const (
	paramPrefix      = "prefix"
	paramTLS         = "tls"
	paramCA          = "ca"
	paramCert        = "cert"
	paramKey         = "key"
	paramDialTimeout = "dial_timeout"
	paramInsecure    = "insecure_skip_verify"
)

var knownParams = []string{paramCA, paramCert, paramDialTimeout, paramInsecure, paramKey, paramPrefix, paramTLS}

const urlForm = "etcd://[user:password@]host1:2379[,host2:2379...][?prefix=...&tls=true&ca=FILE&cert=FILE&key=FILE&dial_timeout=5s]"

// defaultPort is etcd's client port, used for a host given without one.
const defaultPort = "2379"

// parseURL reads an etcd URL into a Config (no I/O but reading TLS files).
func parseURL(u *url.URL) (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: etcd URL: "+format+" (want "+urlForm+")", append([]any{distlock.ErrInvalid}, args...)...)
	}
	var cfg Config
	if u.Opaque != "" {
		return bad("no hosts: write etcd://host:port")
	}
	if u.Host == "" {
		return bad("no hosts")
	}
	if u.Path != "" && u.Path != "/" {
		return bad("path %q is not allowed: use the prefix parameter for a key prefix", u.Path)
	}
	if u.Fragment != "" {
		return bad("fragment %q is not allowed", u.Fragment)
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
		if cfg.Username == "" {
			return bad("a password needs a user name")
		}
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return bad("empty host in %q", u.Host)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			if !strings.Contains(err.Error(), "missing port") {
				return bad("host %q: %v", h, err)
			}
			host, port = strings.Trim(h, "[]"), defaultPort
		}
		if host == "" {
			return bad("host %q has no name", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return bad("host %q: bad port %q", h, port)
		}
		cfg.Endpoints = append(cfg.Endpoints, net.JoinHostPort(host, port))
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	var unknown []string
	for name, vals := range q {
		if !slices.Contains(knownParams, name) {
			unknown = append(unknown, name)
			continue
		}
		if len(vals) > 1 {
			return bad("parameter %s is given %d times", name, len(vals))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return bad("unknown parameter(s) %s (known: %s)", strings.Join(unknown, ", "), strings.Join(knownParams, ", "))
	}
	cfg.Prefix = q.Get(paramPrefix)
	if strings.IndexByte(cfg.Prefix, 0) >= 0 {
		return bad("prefix contains a NUL byte")
	}
	if q.Has(paramDialTimeout) {
		v := q.Get(paramDialTimeout)
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return bad("dial_timeout=%q: want a positive duration such as 5s", v)
		}
		cfg.DialTimeout = d
	}
	useTLS := false
	if q.Has(paramTLS) {
		v, err := strconv.ParseBool(q.Get(paramTLS))
		if err != nil {
			return bad("tls=%q: want true or false", q.Get(paramTLS))
		}
		useTLS = v
	}
	insecure := false
	if q.Has(paramInsecure) {
		v, err := strconv.ParseBool(q.Get(paramInsecure))
		if err != nil {
			return bad("insecure_skip_verify=%q: want true or false", q.Get(paramInsecure))
		}
		insecure = v
	}
	ca, cert, key := q.Get(paramCA), q.Get(paramCert), q.Get(paramKey)
	if (cert == "") != (key == "") {
		return bad("cert and key must be given together")
	}
	if q.Has(paramTLS) && !useTLS && (ca != "" || cert != "" || insecure) {
		return bad("tls=false contradicts ca, cert, key or insecure_skip_verify")
	}
	if !useTLS && ca == "" && cert == "" && !insecure {
		return cfg, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return bad("ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return bad("ca %q holds no PEM certificate", ca)
		}
		tc.RootCAs = pool
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return bad("cert/key: %v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	cfg.TLS = tc
	return cfg, nil
}
