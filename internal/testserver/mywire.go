package testserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// The few packets of the MySQL client/server protocol that a readiness check
// needs: the server's greeting, a login with an empty password, COM_QUIT.

// myTarget says where a MySQL or MariaDB server listens and whom to log in
// as.
type myTarget struct {
	network, addr string // "tcp" and host:port, or "unix" and a socket path
	user, db      string
}

// Capability flags.
const (
	clientLongPassword     = 1 << 0 // "CLIENT_MYSQL" to MariaDB
	clientConnectWithDB    = 1 << 3
	clientProtocol41       = 1 << 9
	clientTransactions     = 1 << 13
	clientSecureConnection = 1 << 15
	clientPluginAuth       = 1 << 19
)

// myConn is a connection after the greeting.
type myConn struct {
	net.Conn
	rd  *bufio.Reader
	seq byte
}

// myConnect reads the greeting and, with login set, logs in as tg.user with
// an empty password, into tg.db.
func myConnect(ctx context.Context, tg myTarget, login bool) (*myConn, error) {
	conn, err := dial(ctx, tg.network, tg.addr)
	if err != nil {
		return nil, err
	}
	c := &myConn{Conn: conn, rd: bufio.NewReader(conn)}
	if err := c.handshake(tg, login); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *myConn) handshake(tg myTarget, login bool) error {
	greeting, err := c.read()
	if err != nil {
		return err
	}
	if len(greeting) > 0 && greeting[0] == 0xff {
		return myError(greeting)
	}
	if len(greeting) == 0 || greeting[0] != 10 {
		return fmt.Errorf("mysql: greeting of protocol %v, want 10", greeting[:min(1, len(greeting))])
	}
	if !login {
		return nil
	}
	caps, plugin, err := parseGreeting(greeting)
	if err != nil {
		return err
	}
	if caps&clientProtocol41 == 0 || caps&clientSecureConnection == 0 {
		return fmt.Errorf("mysql: server lacks protocol 4.1 (capabilities %#x)", caps)
	}
	want := uint32(clientLongPassword | clientProtocol41 | clientTransactions | clientSecureConnection)
	if tg.db != "" {
		want |= clientConnectWithDB
	}
	if caps&clientPluginAuth != 0 {
		want |= clientPluginAuth
	}
	var resp []byte
	resp = binary.LittleEndian.AppendUint32(resp, want)
	resp = binary.LittleEndian.AppendUint32(resp, 1<<24) // max packet size
	resp = append(resp, 45)                              // utf8mb4_general_ci
	resp = append(resp, make([]byte, 23)...)
	resp = append(append(resp, tg.user...), 0)
	resp = append(resp, 0) // an empty auth response: the empty password
	if tg.db != "" {
		resp = append(append(resp, tg.db...), 0)
	}
	if want&clientPluginAuth != 0 {
		resp = append(append(resp, plugin...), 0)
	}
	if err := c.write(resp); err != nil {
		return err
	}
	for range 4 {
		reply, err := c.read()
		if err != nil {
			return err
		}
		switch {
		case len(reply) == 0:
			return errors.New("mysql: empty reply to the login")
		case reply[0] == 0x00: // OK
			return nil
		case reply[0] == 0xff:
			return myError(reply)
		case reply[0] == 0xfe: // switch to another plugin: still an empty password
			if err := c.write(nil); err != nil {
				return err
			}
		case reply[0] == 0x01: // more data from the plugin (caching_sha2's fast path); OK follows
		default:
			return fmt.Errorf("mysql: unexpected reply %#x to the login", reply[0])
		}
	}
	return errors.New("mysql: login did not end")
}

// parseGreeting returns the capabilities and the authentication plugin of a
// protocol 10 greeting.
func parseGreeting(p []byte) (caps uint32, plugin string, err error) {
	bad := errors.New("mysql: malformed greeting")
	p = p[1:]
	end := bytes.IndexByte(p, 0) // server version
	if end < 0 {
		return 0, "", bad
	}
	p = p[end+1:]
	if len(p) < 4+8+1+2 {
		return 0, "", bad
	}
	p = p[4+8+1:] // connection id, first 8 bytes of the scramble, filler
	caps = uint32(binary.LittleEndian.Uint16(p))
	p = p[2:]
	plugin = "mysql_native_password"
	if len(p) < 1+2+2+1+10 {
		return caps, plugin, nil
	}
	caps |= uint32(binary.LittleEndian.Uint16(p[3:])) << 16
	authLen := int(p[5])
	p = p[16:] // charset, status, upper capabilities, auth data length, reserved
	if caps&clientSecureConnection != 0 {
		n := max(13, authLen-8)
		if len(p) < n {
			return 0, "", bad
		}
		p = p[n:]
	}
	if caps&clientPluginAuth != 0 && len(p) > 0 {
		plugin, _, _ = strings.Cut(string(p), "\x00")
	}
	return caps, plugin, nil
}

// read reads one packet.
func (c *myConn) read() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.rd, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	c.seq = hdr[3] + 1
	p := make([]byte, n)
	if _, err := io.ReadFull(c.rd, p); err != nil {
		return nil, err
	}
	return p, nil
}

// write writes one packet with the next sequence number.
func (c *myConn) write(p []byte) error {
	pkt := []byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), c.seq}
	c.seq++
	_, err := c.Conn.Write(append(pkt, p...))
	return err
}

// quit sends COM_QUIT and closes the connection.
func (c *myConn) quit() error {
	c.seq = 0
	err := c.write([]byte{0x01})
	return errors.Join(err, c.Close())
}

// myError formats an ERR packet: code, SQLSTATE and message.
func myError(p []byte) error {
	if len(p) < 3 {
		return errors.New("mysql: malformed error packet")
	}
	code := binary.LittleEndian.Uint16(p[1:])
	msg, state := p[3:], ""
	if len(msg) >= 6 && msg[0] == '#' {
		state, msg = string(msg[1:6]), msg[6:]
	}
	return fmt.Errorf("mysql: error %d (%s): %s", code, state, msg)
}

// myPing logs in and quits; with login unset it only reads the greeting,
// which tells that a server answers without needing its password.
func myPing(ctx context.Context, tg myTarget, login bool) error {
	c, err := myConnect(ctx, tg, login)
	if err != nil {
		return err
	}
	if !login {
		return c.Close()
	}
	return c.quit()
}

// parseMySQLDSN reads where a go-sql-driver/mysql DSN points:
// [user[:password]@][net[(addr)]]/dbname[?params].
func parseMySQLDSN(dsn string) (myTarget, error) {
	tg := myTarget{network: "tcp", addr: "127.0.0.1:3306"}
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		return myTarget{}, fmt.Errorf("%q has no /dbname", dsn)
	}
	tg.db, _, _ = strings.Cut(dsn[slash+1:], "?")
	rest := dsn[:slash]
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		tg.user, _, _ = strings.Cut(rest[:at], ":")
		rest = rest[at+1:]
	}
	if rest == "" {
		return tg, nil
	}
	network, addr, ok := strings.Cut(rest, "(")
	if !ok || !strings.HasSuffix(addr, ")") {
		return myTarget{}, fmt.Errorf("%q: want net(addr) before the /, as in tcp(127.0.0.1:3306)", dsn)
	}
	addr = strings.TrimSuffix(addr, ")")
	switch network {
	case "tcp", "tcp4", "tcp6":
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "3306")
		}
	case "unix":
	default:
		return myTarget{}, fmt.Errorf("%q: network %q is neither tcp nor unix", dsn, network)
	}
	tg.network, tg.addr = network, addr
	return tg, nil
}
