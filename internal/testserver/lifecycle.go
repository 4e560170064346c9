package testserver

import "testing"

// lifecycle gives a server handle Stop, Kill, Pause, Resume and Restart.
// On an external server (p is nil) each of them skips the test: its
// lifecycle is not the test's to control.
type lifecycle struct {
	t      testing.TB
	p      *process // nil for an external server
	server string   // "Redis", "PostgreSQL", "MariaDB"
	env    string   // the variable that names an external server
}

// External reports whether the server is an external one, named by an
// environment variable, whose lifecycle the test does not control.
func (l lifecycle) External() bool { return l.p == nil }

// Stop shuts the server down and waits for it to exit; after 15s it is
// killed and the test fails. Clients are disconnected (PostgreSQL gets
// SIGINT, its fast shutdown; the others SIGTERM).
func (l lifecycle) Stop() { l.t.Helper(); l.private("Stop").stop() }

// Kill kills the server and every process of it (SIGKILL), as a crash
// would, and waits for it to exit. What was committed in the last moments
// may be lost: no server here waits for the disk.
func (l lifecycle) Kill() { l.t.Helper(); l.private("Kill").kill() }

// Pause stops the server and every process of it (SIGSTOP): connections stay
// open, and requests go unanswered until Resume.
func (l lifecycle) Pause() { l.t.Helper(); l.private("Pause").pause() }

// Resume continues a paused server (SIGCONT).
func (l lifecycle) Resume() { l.t.Helper(); l.private("Resume").resume() }

// Restart stops the server if it runs and starts it again on the same
// address, with the same data directory. PostgreSQL and MariaDB keep their
// data (except what a Kill lost); Redis keeps nothing on disk, so every key
// is lost, unless it was started Persistent.
func (l lifecycle) Restart() { l.t.Helper(); l.private("Restart").restart() }

// private returns the child process, or skips the test for an external
// server.
func (l lifecycle) private(op string) *process {
	l.t.Helper()
	if l.p == nil {
		l.t.Skipf("testserver: %s needs a private %s server, but %s names an external one; unset it, or start the server with testserver.Private()",
			op, l.server, l.env)
	}
	return l.p
}
