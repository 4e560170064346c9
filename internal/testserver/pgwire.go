package testserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
)

// The few messages of the PostgreSQL wire protocol (version 3.0) that a
// readiness check needs: a startup as a trusted user, then Terminate.

// pgTarget says where a PostgreSQL server listens and whom to log in as.
type pgTarget struct {
	network, addr string // "tcp" and host:port, or "unix" and a socket path
	user, db      string
}

// errPGAuth reports that the server wants a password: it answers, but the
// check cannot log in.
var errPGAuth = errors.New("the server asks for a password")

// pgConnect opens a connection and completes the startup, up to the first
// ReadyForQuery. A server still starting answers with an error (SQLSTATE
// 57P03), which is returned.
func pgConnect(ctx context.Context, tg pgTarget) (net.Conn, *bufio.Reader, error) {
	conn, err := dial(ctx, tg.network, tg.addr)
	if err != nil {
		return nil, nil, err
	}
	var body []byte
	body = binary.BigEndian.AppendUint32(body, 3<<16) // protocol 3.0
	for _, kv := range []string{"user", tg.user, "database", tg.db, "application_name", "distlock-testserver"} {
		body = append(body, kv...)
		body = append(body, 0)
	}
	body = append(body, 0)
	msg := binary.BigEndian.AppendUint32(nil, uint32(4+len(body)))
	if _, err := conn.Write(append(msg, body...)); err != nil {
		conn.Close()
		return nil, nil, err
	}
	rd := bufio.NewReader(conn)
	for {
		typ, body, err := pgRead(rd)
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		switch typ {
		case 'R': // Authentication*
			if len(body) < 4 || binary.BigEndian.Uint32(body) != 0 {
				conn.Close()
				return nil, nil, errPGAuth
			}
		case 'E':
			conn.Close()
			return nil, nil, pgError(body)
		case 'Z': // ReadyForQuery
			return conn, rd, nil
		}
	}
}

// pgPing logs in and out. With external set, a server that asks for a
// password counts as answering.
func pgPing(ctx context.Context, tg pgTarget, external bool) error {
	conn, _, err := pgConnect(ctx, tg)
	if err != nil {
		if external && errors.Is(err, errPGAuth) {
			return nil
		}
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
	return err
}

// pgRead reads one backend message.
func pgRead(rd *bufio.Reader) (typ byte, body []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > 1<<24 {
		return 0, nil, fmt.Errorf("postgres: message %q of length %d", hdr[0], n)
	}
	body = make([]byte, n-4)
	if _, err := io.ReadFull(rd, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

// pgError formats an ErrorResponse: severity, SQLSTATE and message.
func pgError(body []byte) error {
	fields := map[byte]string{}
	for len(body) > 1 {
		code := body[0]
		end := strings.IndexByte(string(body[1:]), 0)
		if end < 0 {
			break
		}
		fields[code] = string(body[1 : 1+end])
		body = body[2+end:]
	}
	return fmt.Errorf("postgres: %s: %s (SQLSTATE %s)", fields['S'], fields['M'], fields['C'])
}

// parsePostgresDSN reads where a DSN points, in URL form
// (postgres://user@host:port/db?...) or keyword form
// ("host=... port=... user=... dbname=..."). A host starting with "/" is a
// Unix socket directory.
func parsePostgresDSN(dsn string) (pgTarget, error) {
	host, port, user, db := "", "", "", ""
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return pgTarget{}, err
		}
		host, port = u.Hostname(), u.Port()
		user = u.User.Username()
		db = strings.TrimPrefix(u.Path, "/")
		q := u.Query()
		for key, dst := range map[string]*string{"host": &host, "port": &port, "user": &user, "dbname": &db} {
			if v := q.Get(key); v != "" {
				*dst = v
			}
		}
	} else {
		for _, field := range strings.Fields(dsn) {
			key, value, ok := strings.Cut(field, "=")
			if !ok {
				return pgTarget{}, fmt.Errorf("%q is neither a postgres:// URL nor key=value pairs", dsn)
			}
			value = strings.Trim(value, "'")
			switch key {
			case "host":
				host = value
			case "port":
				port = value
			case "user":
				user = value
			case "dbname":
				db = value
			}
		}
	}
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "5432"
	}
	if user == "" {
		user = "postgres"
	}
	if db == "" {
		db = user
	}
	if strings.HasPrefix(host, "/") {
		return pgTarget{network: "unix", addr: host + "/.s.PGSQL." + port, user: user, db: db}, nil
	}
	return pgTarget{network: "tcp", addr: net.JoinHostPort(host, port), user: user, db: db}, nil
}
