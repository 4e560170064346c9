package testserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// templateFormat changes whenever the way templates are built changes, so
// that stale ones are not reused.
const templateFormat = "1"

var templateMu sync.Mutex

// cachedTemplate returns a pristine data directory made by build, which
// creates dir/data in a fresh directory owned by buildAs. The result is kept
// under the user's cache directory, named by a hash of kind and key, and
// shared by every test process that asks for the same key: initdb and
// mariadb-install-db take about a second, copying their output a few tens of
// milliseconds. Concurrent builders race harmlessly: each builds into a
// staging directory and the first rename wins.
func cachedTemplate(t testing.TB, kind string, key []string, buildAs *owner, build func(dir string) error) (string, error) {
	t.Helper()
	root := cacheRoot()
	final := templatePath(kind, key)
	data := filepath.Join(final, "data")
	if isDir(data) {
		return data, nil
	}

	templateMu.Lock()
	defer templateMu.Unlock()
	if isDir(data) {
		return data, nil
	}
	began := time.Now()
	buildDir, err := scratchDir("distlock-"+kind+"-template-", buildAs)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(buildDir)
	if err := build(buildDir); err != nil {
		return "", err
	}

	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	pruneStages(root)
	stage, err := os.MkdirTemp(root, ".stage-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage) // a no-op once renamed
	if err := copyTree(filepath.Join(buildDir, "data"), filepath.Join(stage, "data"), nil); err != nil {
		return "", fmt.Errorf("caching the %s template: %w", kind, err)
	}
	if err := os.Rename(stage, final); err != nil && !isDir(data) {
		return "", fmt.Errorf("caching the %s template: %w", kind, err)
	}
	t.Logf("testserver: built the %s template in %v, cached in %s", kind, time.Since(began).Round(time.Millisecond), final)
	return data, nil
}

// templatePath is where the template for kind and key is cached.
func templatePath(kind string, key []string) string {
	sum := sha256.Sum256([]byte(strings.Join(append([]string{kind, templateFormat}, key...), "\x00")))
	return filepath.Join(cacheRoot(), kind+"-"+hex.EncodeToString(sum[:8]))
}

// cacheRoot is where templates are kept: the user's cache directory, or the
// temporary directory when there is none.
func cacheRoot() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "distlock-testserver")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("distlock-testserver-%d", os.Getuid()))
}

// pruneStages removes staging directories that a killed test process left
// behind more than an hour ago.
func pruneStages(root string) {
	stages, _ := filepath.Glob(filepath.Join(root, ".stage-*"))
	for _, s := range stages {
		if fi, err := os.Stat(s); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(s)
		}
	}
}

// binaryKey identifies a binary's build: its resolved path, size and
// modification time. A package upgrade changes it.
func binaryKey(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	fi, err := os.Stat(path)
	if err != nil {
		return path
	}
	return fmt.Sprintf("%s:%d:%d", path, fi.Size(), fi.ModTime().UnixNano())
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// copyTree copies the directory src to dst, which must not exist, keeping
// modes and making o the owner of every copy when o is not nil.
func copyTree(src, dst string, o *owner) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		switch {
		case mode.IsDir():
			if err := os.Mkdir(target, mode.Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, mode.Perm()); err != nil { // undo the umask
				return err
			}
		case mode.IsRegular():
			if err := copyFile(path, target, mode.Perm()); err != nil {
				return err
			}
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		default:
			return fmt.Errorf("copying %s: not a file, directory or symlink (%v)", path, mode.Type())
		}
		return chown(target, o)
	})
}

func copyFile(src, dst string, perm fs.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Chmod(perm)
}
