package main

// The stores compiled into the distlock binary. SQLite is the default and
// needs no server.
import _ "github.com/distlock/distlock/sqlitelock"
