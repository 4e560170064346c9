// Package testenv holds the policy shared by every test that needs something
// outside the test binary: a server, a client tool, an environment variable.
//
// # Unavailable backends
//
// A backend test that cannot reach its server calls [Unavailable]. On a
// developer's machine the test is skipped, with a message that says what is
// missing and how to provide it. Under continuous integration (the CI
// environment variable is "true" or "1") the same call fails the test, so that
// a backend can never count as tested without having touched a server.
package testenv
