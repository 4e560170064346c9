package leaserow

import (
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/driver"
)

// DefaultTable is the lock table's name when none is given.
const DefaultTable = "distlock_locks"

// Markers in a Dialect's statements, replaced once when a Store is made.
const (
	// TableMarker stands for the (validated, unquoted) table name.
	TableMarker = "{table}"
	// KeysMarker and TokensMarker stand for the placeholder lists of a
	// batch renewal: keys first, then tokens.
	KeysMarker   = "{keys}"
	TokensMarker = "{tokens}"
)

// Dialect is everything that differs between two SQL databases. Its
// statements are written out in full in the database's own syntax and
// placeholder style, so they can be read, reviewed and documented as they go
// on the wire; only the markers above are filled in.
//
// Arguments are always bound, in this order:
//
//	Acquire               key, token, owner, ttl_ms [, clock_us]
//	AcquireRead           key
//	Release               key, token
//	Renew, RenewRead      key_1 ... key_n, token_1 ... token_n
//	Inspect               key
//	Purge                 age_ms
//
// A statement that returns a lease row returns, in this order: token, fence,
// owner, ttl_ms, remaining_ms (Inspect leaves out ttl_ms). Renew and
// RenewRead return lock_key, token for each lease that is (still) held.
type Dialect struct {
	// Name is the backend's short name ("sqlite"), used in errors.
	Name string
	// MinTTL is the smallest TTL the driver accepts.
	MinTTL time.Duration

	// CreateTable creates the table if it does not exist.
	CreateTable string
	// Probe selects every column of the table and no row. It checks, when
	// a Store is initialised, that the table exists with the right columns.
	Probe string

	// Acquire inserts the row or takes over an expired one, in one
	// autocommit statement, and returns the row as it is afterwards
	// (whoever holds it).
	Acquire string
	// ClockArg makes Acquire bind a fifth argument: the caller's clock in
	// microseconds since the Unix epoch, read just before the statement is
	// sent (after the Gate). It is for databases whose own clock is too
	// coarse for fences: the statement takes the later of the two clocks as
	// the floor of a new fence. Only for stores on the caller's machine
	// (SQLite), where the two clocks are one.
	ClockArg bool
	// AcquireRead, if set, is for databases without INSERT ... RETURNING:
	// Acquire is then executed for its effect only, and AcquireRead reads
	// the row back by key (a second statement). See also ReadOnEmpty.
	AcquireRead string
	// Granted, if set with AcquireRead, reads Acquire's result (affected
	// rows, last insert id) and reports whether the statement took the
	// row, and with which fence; only when it did not is AcquireRead sent.
	// MySQL reports the new fence through LAST_INSERT_ID(expr), so an
	// uncontended acquire is one round trip.
	Granted func(res sql.Result) (fence int64, ok bool, err error)
	// ReadOnEmpty, with AcquireRead, is for databases with RETURNING whose
	// Acquire returns the row only when it wrote it (PostgreSQL's ON
	// CONFLICT ... DO UPDATE ... WHERE): when it returns no row,
	// AcquireRead reads the holder.
	ReadOnEmpty bool

	// Release frees the row if the token holds it; it affects one row or
	// none.
	Release string

	// Renew extends every lease of the batch that is still held and returns
	// the renewed rows' lock_key and token.
	Renew string
	// RenewRead, if set, is for databases without UPDATE ... RETURNING:
	// Renew is then executed for its effect only and, only when it affected
	// fewer rows than the batch has leases, RenewRead (same arguments) lists
	// the leases that are held.
	RenewRead string
	// MaxBatch is the most leases one Renew statement carries (bound by the
	// database's limit on parameters); larger batches are split.
	MaxBatch int

	// Inspect reads the row of a key if it is held now.
	Inspect string

	// Purge deletes, in one statement, every row that has been free for
	// at least age_ms by the database's clock and whose fence the clock
	// has passed by as much: the later of the time it was freed
	// (abs(expires_at)) and its fence's time (fence / 1000) is at least
	// age_ms ago. A held row is never old enough.
	Purge string

	// Prepare makes Init prepare the fixed statements (Acquire,
	// AcquireRead, Release, Inspect) once. Off for connections that cannot
	// keep prepared statements (PostgreSQL behind a transaction-mode pooler).
	Prepare bool

	// Placeholder returns the i-th (1-based) bind placeholder: "?", "?3",
	// "$3".
	Placeholder func(i int) string

	// Unavailable reports whether err proves the request never reached the
	// database, so nothing can have happened (the file cannot be opened,
	// the dial was refused). Such errors are wrapped in driver.ErrUnavailable.
	Unavailable func(err error) bool
}

// Classify wraps err in driver.ErrUnavailable when the dialect says the
// request surely never reached the database. Drivers use it for statements
// of their own (version checks, LISTEN).
func (d *Dialect) Classify(err error) error {
	if err == nil || errors.Is(err, driver.ErrUnavailable) {
		return err
	}
	if d.Unavailable != nil && d.Unavailable(err) {
		return fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
	}
	return err
}

// identifierRE matches a plain, unquoted SQL identifier, optionally qualified
// by a schema name. Nothing that needs quoting passes, so the name is safe to
// place in a statement as it is.
var identifierRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// ValidateTable reports why name cannot be used as the lock table's name, or
// nil. Names are plain SQL identifiers (letters, digits, underscores; not
// starting with a digit; at most 63 bytes), optionally schema-qualified
// ("locks.distlock_locks"). They are never quoted: a reserved word fails
// when the table is created, with the database's own error.
func ValidateTable(name string) error {
	if !identifierRE.MatchString(name) {
		return fmt.Errorf("%w: table name %q is not a plain SQL identifier (letters, digits and _, not starting with a digit, at most 63 bytes, optionally schema.table)",
			distlock.ErrInvalid, name)
	}
	return nil
}

// check reports what a Dialect is missing.
func (d *Dialect) check() error {
	var missing []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"Name", d.Name != ""},
		{"CreateTable", d.CreateTable != ""},
		{"Probe", d.Probe != ""},
		{"Acquire", d.Acquire != ""},
		{"Release", d.Release != ""},
		{"Renew", strings.Contains(d.Renew, KeysMarker) && strings.Contains(d.Renew, TokensMarker)},
		{"RenewRead", d.RenewRead == "" || strings.Contains(d.RenewRead, KeysMarker) && strings.Contains(d.RenewRead, TokensMarker)},
		{"MaxBatch", d.MaxBatch > 0},
		{"Inspect", d.Inspect != ""},
		{"Purge", d.Purge != ""},
		{"Placeholder", d.Placeholder != nil},
	} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("leaserow: dialect %q is incomplete: %s", d.Name, strings.Join(missing, ", "))
	}
	return nil
}

// withTable fills the table name into s.
func withTable(s, table string) string { return strings.ReplaceAll(s, TableMarker, table) }

// batchSQL fills the placeholder lists of a batch statement for n leases:
// keys take placeholders 1..n, tokens n+1..2n.
func (d *Dialect) batchSQL(tmpl string, n int) string {
	var keys, tokens strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			keys.WriteString(", ")
			tokens.WriteString(", ")
		}
		keys.WriteString(d.Placeholder(i))
		tokens.WriteString(d.Placeholder(n + i))
	}
	s := strings.Replace(tmpl, KeysMarker, keys.String(), 1)
	return strings.Replace(s, TokensMarker, tokens.String(), 1)
}

// NumberedPlaceholder returns prefix followed by i: "?3" (SQLite), "$3"
// (PostgreSQL).
func NumberedPlaceholder(prefix string) func(int) string {
	return func(i int) string { return prefix + strconv.Itoa(i) }
}

// QuestionPlaceholder returns "?" for every position (MySQL).
func QuestionPlaceholder(int) string { return "?" }

// errCoder is the shape of errors that carry a numeric result code, such as
// modernc.org/sqlite's *sqlite.Error. Matching the method keeps this package
// free of any database driver import.
type errCoder interface{ Code() int }

// ErrorCode returns the result code of the first error in err's chain that
// has a Code() int method.
func ErrorCode(err error) (int, bool) {
	var c errCoder
	if errors.As(err, &c) {
		return c.Code(), true
	}
	return 0, false
}

// Schema returns the statements that create the lock table named table (if
// it does not exist), as a Store runs them: for distlock migrate and for
// teams that manage their schema themselves.
func (d *Dialect) Schema(table string) []string {
	return []string{withTable(d.CreateTable, table)}
}
