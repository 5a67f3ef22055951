package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/census/store/storetest"
	"github.com/gravitational/teleport-update/internal/pgtest"
)

// TestRolloutConformance runs the rollout suite against SQLite.
func TestRolloutConformance(t *testing.T) {
	t.Parallel()
	storetest.RunRollout(t, func(t *testing.T) storetest.RolloutBackend {
		return openRollout(t, filepath.Join(t.TempDir(), "census.db"))
	})
}

// TestRolloutConformancePostgres runs the rollout suite against
// PostgreSQL.
func TestRolloutConformancePostgres(t *testing.T) {
	t.Parallel()
	storetest.RunRollout(t, func(t *testing.T) storetest.RolloutBackend {
		return openRollout(t, pgtest.Database(t))
	})
}

// openRollout opens the census at dsn (a file or a PostgreSQL URL) with no
// limit on how often a host reports, closed when the test ends.
func openRollout(t *testing.T, dsn string) storetest.RolloutBackend {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, store.Options{ReportBurst: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
