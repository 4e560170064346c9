package sqlitelock

import (
	"os"
	"strings"
	"testing"

	"github.com/distlock/distlock/internal/leaserow"
)

// TestDocShowsStatements keeps the wire protocol in doc.go verbatim: every
// statement the driver sends must appear there as a code block.
func TestDocShowsStatements(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var code strings.Builder
	for line := range strings.Lines(string(src)) {
		if rest, ok := strings.CutPrefix(line, "//\t"); ok {
			code.WriteString(rest)
		} else {
			code.WriteString("\n")
		}
	}
	d := leaserow.SQLite
	for name, stmt := range map[string]string{
		"CreateTable": d.CreateTable,
		"Probe":       d.Probe,
		"Acquire":     d.Acquire,
		"Release":     d.Release,
		"Renew":       d.Renew,
		"Inspect":     d.Inspect,
		"Purge":       d.Purge,
	} {
		if !strings.Contains(code.String(), stmt+"\n") {
			t.Errorf("doc.go does not show the %s statement verbatim; it is:\n%s", name, stmt)
		}
	}
	if d.AcquireRead != "" || d.RenewRead != "" {
		t.Error("the SQLite dialect gained a read-back statement: document it in doc.go and here")
	}
}
