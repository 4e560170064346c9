package leaserow

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/distlock/distlock"
)

// The store URL parameters every SQL package reads itself, before its
// database driver sees the rest of the URL.
const (
	ParamTable       = "table"
	ParamCreateTable = "create_table"
	ParamMode        = "mode"
)

// URLParams are the values of those parameters.
type URLParams struct {
	Table              string // "" when not given
	DisableCreateTable bool   // create_table=false
	Mode               int    // the index of mode=NAME in the modes given; 0 when not given
}

// TakeURLParams reads table, create_table and, when modes are given, mode
// from q, and removes them from it. urlName names the URL in errors
// ("postgres URL: ..."), which wrap distlock.ErrInvalid: a repeated
// parameter, a table name that is not a plain identifier, create_table that
// is not a boolean, a mode not among modes.
func TakeURLParams(q url.Values, urlName string, modes ...string) (URLParams, error) {
	bad := func(format string, args ...any) (URLParams, error) {
		return URLParams{}, fmt.Errorf("%w: %s URL: "+format, append([]any{distlock.ErrInvalid, urlName}, args...)...)
	}
	names := []string{ParamTable, ParamCreateTable}
	if len(modes) > 0 {
		names = append(names, ParamMode)
	}
	for _, name := range names {
		if len(q[name]) > 1 {
			return bad("parameter %s is given %d times", name, len(q[name]))
		}
	}
	var p URLParams
	if v := q.Get(ParamMode); len(modes) > 0 && q.Has(ParamMode) {
		p.Mode = slices.Index(modes, v)
		if p.Mode < 0 {
			return bad("mode=%q: want %s", v, strings.Join(modes, " or "))
		}
	}
	if q.Has(ParamTable) {
		p.Table = q.Get(ParamTable)
		if err := ValidateTable(p.Table); err != nil {
			return URLParams{}, fmt.Errorf("%s URL: %w", urlName, err)
		}
	}
	if v := q.Get(ParamCreateTable); q.Has(ParamCreateTable) {
		create, err := strconv.ParseBool(v)
		if err != nil {
			return bad("create_table=%q: want true or false", v)
		}
		p.DisableCreateTable = !create
	}
	for _, name := range names {
		q.Del(name)
	}
	return p, nil
}
