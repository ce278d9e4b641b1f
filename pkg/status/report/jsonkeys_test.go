package report

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJSONKeysAreSnakeCase: every key of `viaduct status --json` and /status?format=json is snake_case, including
// those of the types the engines' summaries hold (a files row, a failure, a daemon). A field without a json tag
// would appear under its Go name.
func TestJSONKeysAreSnakeCase(t *testing.T) {
	t.Parallel()
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	marshaler := reflect.TypeFor[json.Marshaler]()
	seen := map[reflect.Type]bool{}
	var walk func(ty reflect.Type, path string)
	walk = func(ty reflect.Type, path string) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Array || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		// A type that writes its own JSON (a time, a per-county tally) chooses its keys itself.
		if ty.Kind() != reflect.Struct || seen[ty] || ty.Implements(marshaler) || reflect.PointerTo(ty).Implements(marshaler) {
			return
		}
		seen[ty] = true
		for i := range ty.NumField() {
			f := ty.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			require.Regexp(t, snake, name, "%s.%s (%s) needs a snake_case json tag", path, f.Name, ty)
			walk(f.Type, path+"."+name)
		}
	}
	walk(reflect.TypeFor[Status](), "status")
}
