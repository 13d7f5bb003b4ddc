// Package storetest is the conformance suite of store.Store: one subtest per
// clause of the contract, run by every backend's tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... a new, empty store ... })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kailash-gateway/kgw/store"
)

// Opener returns a new, empty store for one subtest. Run closes it when the
// subtest ends.
type Opener func(t *testing.T) store.Store

// Run runs the conformance suite; each subtest gets its own store from open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Workflow/CreateVersionsAndGet", testWorkflowVersions},
		{"Workflow/GetNotFound", testWorkflowNotFound},
		{"Workflow/ListPagination", testWorkflowList},
		{"Workflow/Delete", testWorkflowDelete},
		{"Workflow/ConcurrentVersionsAreDense", testWorkflowConcurrentVersions},
		{"Execution/CreateAndGet", testExecutionCreateGet},
		{"Execution/DuplicateID", testExecutionDuplicateID},
		{"Execution/IdempotencyKeyPerCaller", testExecutionIdempotency},
		{"Execution/ListNewestFirstFilteredPaged", testExecutionList},
		{"Execution/ListWithoutResults", testExecutionListOmitResults},
		{"Journal/WriteAndListEvents", testJournalWrite},
		{"Journal/CreateInBatch", testJournalCreate},
		{"Journal/CreateFinished", testJournalCreateFinished},
		{"Journal/ShortRunEvents", testJournalShortRuns},
		{"Journal/DuplicateSeqAppliesNothing", testJournalConflict},
		{"Journal/UnknownExecution", testJournalUnknownExecution},
		{"Journal/ManyEvents", testJournalManyEvents},
		{"Journal/ConcurrentWritersConflictIndividually", testConcurrentJournalWriters},
		{"Journal/ConcurrentExecutions", testConcurrentExecutions},
		{"Execution/ClaimAndHeartbeat", testClaim},
		{"Execution/ConcurrentClaimsAreDisjoint", testConcurrentClaims},
		{"Execution/ClaimCountsEpochAndRestarts", testClaimCounters},
		{"Execution/ReclaimOwn", testReclaimOwn},
		{"Execution/ClaimQueued", testClaimQueued},
		{"Execution/ReleaseStale", testReleaseStale},
		{"Execution/DeleteBefore", testDeleteBefore},
		{"Execution/DeleteBeforeManyExpired", testDeleteBeforeMany},
		{"Secret/VersionsGetListDelete", testSecrets},
		{"Secret/ListPagination", testSecretList},
		{"Secret/RewrapAtomic", testRewrap},
		{"Secret/KeyCheck", testKeyCheck},
		{"Resource/PutGetListDelete", testResources},
		{"Access/APIKeys", testAPIKeys},
		{"Access/RoleBindings", testRoleBindings},
		{"Access/Grants", testGrants},
		{"Execution/ListByCaller", testExecutionCallerFilter},
		{"Context/Cancelled", testCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// jsonValue is a JSON-like map exercising every kind of value.
func jsonValue() map[string]any {
	return map[string]any{
		"string":  "héllo \"quoted\" \n line",
		"empty":   "",
		"true":    true,
		"false":   false,
		"int":     int64(42),
		"neg":     int64(-7),
		"big":     int64(1 << 53),
		"float":   3.25,
		"nil":     nil,
		"list":    []any{int64(1), "two", 3.5, nil, true, []any{"nested"}, map[string]any{"k": "v"}},
		"emptyls": []any{},
		"map": map[string]any{
			"deep":  map[string]any{"deeper": map[string]any{"x": int64(1)}},
			"empty": map[string]any{},
		},
	}
}

// normalizeNumbers makes int64 and float64 compare equal (backends may
// return whole numbers either way).
// A nil map and an empty one are equal at the top (JSON "omitempty").
func normalizeNumbers(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = normalizeValue(v)
	}
	return out
}

func normalizeValue(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeValue(e)
		}
		return out
	}
	return v
}

// cmpOpts compares store values: numbers by value, times to the microsecond.
var cmpOpts = []cmp.Option{
	cmp.Transformer("normalizeNumbers", normalizeNumbers),
	cmpopts.EquateApproxTime(time.Microsecond),
	// nil and empty are equal, except for JSON maps, handled above.
	cmp.FilterPath(func(p cmp.Path) bool { return p.Last().Type() != jsonMapType }, cmpopts.EquateEmpty()),
}

var jsonMapType = reflect.TypeOf(map[string]any(nil))

func diff(want, got any) string { return cmp.Diff(want, got, cmpOpts...) }

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// baseTime is a fixed instant with sub-microsecond digits dropped.
var baseTime = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

func at(d time.Duration) time.Time { return baseTime.Add(d) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func errorsIsCanceled(err error) bool { return errors.Is(err, context.Canceled) }
