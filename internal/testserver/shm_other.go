//go:build !(linux && (amd64 || arm64))

package testserver

// removeStaleSegment does nothing here: a PostgreSQL server killed as a
// test's last act leaves a small SysV shared memory segment behind (ipcs -m
// lists it, ipcrm -m removes it).
func removeStaleSegment(string) {}
