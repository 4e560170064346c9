package main

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"runtime"
	"strings"
)

// storeEnv names the environment variable that picks the store when --store
// is not given.
const storeEnv = "DISTLOCK_STORE"

// defaultStorePath returns the file of the default store, a SQLite database
// named locks.db in the user's state directory:
//
//	Windows:            %LocalAppData%\distlock\locks.db
//	elsewhere (macOS):  $XDG_STATE_HOME/distlock/locks.db when XDG_STATE_HOME
//	                    is an absolute path (the XDG rule: relative values are
//	                    ignored), else $HOME/.local/state/distlock/locks.db
//
// goos and getenv are parameters so the rule can be tested for every
// platform on any platform.
func defaultStorePath(goos string, getenv func(string) string) (string, error) {
	if goos == "windows" {
		dir := getenv("LocalAppData")
		if dir == "" {
			return "", errors.New(`%LocalAppData% is not set`)
		}
		return strings.TrimRight(dir, `\/`) + `\distlock\locks.db`, nil
	}
	if dir := getenv("XDG_STATE_HOME"); strings.HasPrefix(dir, "/") {
		return path.Join(dir, "distlock", "locks.db"), nil
	}
	home := getenv("HOME")
	if !strings.HasPrefix(home, "/") {
		return "", errors.New("$HOME is not set to an absolute path")
	}
	return path.Join(home, ".local", "state", "distlock", "locks.db"), nil
}

// sqliteURL turns a file path into a sqlite:// store URL.
func sqliteURL(goos, file string) string {
	if goos == "windows" {
		file = strings.ReplaceAll(file, `\`, "/")
		if !strings.HasPrefix(file, "/") {
			file = "/" + file // C:/x becomes sqlite:///C:/x
		}
	}
	return (&url.URL{Scheme: "sqlite", Path: file}).String()
}

// chooseStore returns the store URL: the --store flag when it was given (even
// empty, which Open then rejects), else $DISTLOCK_STORE when not empty, else
// the default store.
func chooseStore(flagValue string, flagGiven bool, getenv func(string) string) (string, error) {
	if flagGiven {
		return flagValue, nil
	}
	if s := getenv(storeEnv); s != "" {
		return s, nil
	}
	file, err := defaultStorePath(runtime.GOOS, getenv)
	if err != nil {
		return "", fmt.Errorf("no default store: %v; pass --store URL or set $%s", err, storeEnv)
	}
	return sqliteURL(runtime.GOOS, file), nil
}
