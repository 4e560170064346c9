package main

// The stores compiled into the distlock binary. SQLite is the default and
// needs no server.
import _ "github.com/distlock/distlock/sqlitelock"

import _ "github.com/distlock/distlock/pglock"
import _ "github.com/distlock/distlock/mysqllock"
import _ "github.com/distlock/distlock/redlock"
import _ "github.com/distlock/distlock/redislock"
import _ "github.com/distlock/distlock/etcdlock"
