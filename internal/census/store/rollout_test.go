package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/census/store/storetest"
)

// TestRolloutConformance runs the rollout suite against SQLite.
func TestRolloutConformance(t *testing.T) {
	t.Parallel()
	storetest.RunRollout(t, func(t *testing.T) storetest.RolloutBackend {
		s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "census.db"), store.Options{ReportBurst: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}
