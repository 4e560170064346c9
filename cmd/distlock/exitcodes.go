package main

// Exit codes. The 64-78 range follows BSD sysexits.h, so shell scripts and
// cron wrappers can tell distlock's own outcomes apart from CMD's; 126, 127
// and 128+N follow the shell's conventions for a command that could not run
// or died by signal N. Every other status is CMD's own.
const (
	exitOK          = 0   // success (or CMD exited 0)
	exitUsage       = 64  // EX_USAGE: bad flags, missing --, bad key or TTL, malformed or unknown store URL
	exitUnavailable = 69  // EX_UNAVAILABLE: the store cannot be reached, or another store error
	exitLocked      = 75  // EX_TEMPFAIL: the lock was not acquired within --wait
	exitLost        = 76  // the lock was lost while CMD ran; CMD was stopped
	exitCannotExec  = 126 // CMD was found but could not be executed
	exitNotFound    = 127 // CMD was not found
	exitSignalBase  = 128 // + N: CMD died by signal N, or distlock's wait was interrupted by it
)
