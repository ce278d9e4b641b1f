package e2

import (
	"maps"
	"reflect"
	"slices"
)

// preferRightKeys are the index case properties a test result may overwrite even when CommCare already has a
// value (HEAD): has_phone_number can flip from no to yes, and new_lab_result_received is set back to yes for
// every new result. Use preferRightKeysFor rather than appending to this slice.
var preferRightKeys = []string{"has_phone_number", "new_lab_result_received"}

// preferRightKeysFor returns the prefer-right keys of an update of kind k: a reactivation also hands the case back
// to the county's owner (owner_id), replacing, for example, an inactive location. The slice is new each time.
func preferRightKeysFor(k repeatKind) []string {
	keys := slices.Clone(preferRightKeys)
	if k == repeatReactivation {
		keys = append(keys, "owner_id")
	}
	return keys
}

// diff implements the "never overwrite" rule (§4.9) between the stored properties old and the computed ones
// computed. A key of computed is an addition when old lacks it or holds null or exactly "" (so "" followed by null adds the null)
// and the value differs. A differing value over a non-empty one is an update, which callers drop, because a person
// in CommCare may have corrected it; for a key in preferRight a non-null computed value is an addition instead. Equal
// values are neither. Values are compared with reflect.DeepEqual, since old may hold any JSON value.
func diff(old, computed map[string]any, preferRight []string) (additions, updates map[string]any) {
	additions, updates = map[string]any{}, map[string]any{}
	for k, nv := range computed {
		ov, ok := old[k]
		switch {
		case ok && reflect.DeepEqual(ov, nv):
		case !ok || ov == nil || ov == "":
			additions[k] = nv
		case nv != nil && slices.Contains(preferRight, k):
			additions[k] = nv
		default:
			updates[k] = nv
		}
	}
	return additions, updates
}

// fillBlanks returns base with its blank values (null or whitespace-only strings) and missing keys taken from
// fill; base's other values win.
func fillBlanks(base, fill map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range fill {
		if bv, ok := out[k]; !ok || isBlankValue(bv) {
			out[k] = v
		}
	}
	return out
}

// withAdditions returns a new map with old's properties overwritten by additions: the data written back.
func withAdditions(old, additions map[string]any) map[string]any {
	out := make(map[string]any, len(old)+len(additions))
	maps.Copy(out, old)
	maps.Copy(out, additions)
	return out
}

// mergeIndexCase applies computed, the properties a test result computes, to an existing index case whose properties
// are old (§4.9 steps 2–3). additions are applied and updates are reported as dropped. address_complete is then
// recomputed over old with the additions filling its gaps, because an addition (a street where there was none)
// can complete an address that the test result alone leaves incomplete; when it differs from old's value it is
// forced in, whatever diff said. merged is old ∪ additions, a new map; the case changed when additions is not
// empty. old is not modified.
func mergeIndexCase(old, computed map[string]any, preferRight []string) (merged, additions, updates map[string]any) {
	additions, updates = diff(old, computed, preferRight)
	complete := addressComplete(fillBlanks(old, additions))
	if !reflect.DeepEqual(old["address_complete"], any(complete)) {
		additions["address_complete"] = complete
		delete(updates, "address_complete")
	}
	return withAdditions(old, additions), additions, updates
}

// mergeLabResult applies computed, the properties a test result computes, to an existing lab result whose
// properties are old (§4.10): computed's blank values are first filled from old, so a test result that lacks a field never blanks
// it, then the never-overwrite diff decides, with no prefer-right keys. merged is old ∪ additions, a new map; old
// is not modified.
func mergeLabResult(old, computed map[string]any) (merged, additions, updates map[string]any) {
	additions, updates = diff(old, fillBlanks(computed, old), nil)
	return withAdditions(old, additions), additions, updates
}
