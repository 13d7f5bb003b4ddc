package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/kailash-gateway/kgw/store"
	"github.com/kailash-gateway/kgw/store/storetest"
)

// A journal transaction whose work panics is rolled back before the panic
// goes on: nothing of it is written, and the held connection takes the
// next write.
func TestJournalTxRollsBackOnPanic(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "kgw.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	b, _ := storetest.ShortRunBatch(storetest.ShortRuns()[0])
	func() {
		defer func() {
			if p := recover(); p != "bug" {
				t.Errorf("recovered %v, want the panic of the transaction's work", p)
			}
		}()
		_ = s.journalTx(t.Context(), func(ctx context.Context) error {
			enc, err := s.encodeBatch(b)
			if err != nil {
				t.Errorf("encodeBatch: %v", err)
			} else if err := s.applyBatch(ctx, enc); err != nil {
				t.Errorf("applyBatch: %v", err)
			}
			panic("bug")
		})
	}()
	id := storetest.ShortRunID(storetest.ShortRuns()[0])
	if _, err := s.GetExecution(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetExecution after the panicked transaction: %v, want ErrNotFound", err)
	}
	if err := s.WriteJournal(t.Context(), b); err != nil {
		t.Fatalf("WriteJournal after the panicked transaction: %v", err)
	}
	if _, err := s.GetExecution(t.Context(), id); err != nil {
		t.Errorf("GetExecution: %v", err)
	}
}
