package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/tmpfs"
)

// lineBuffer is a log sink safe for concurrent writes.
type lineBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lineBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.b.String()), "\n")
}

// ingestRound ingests the reports of hosts first…first+n-1 at once (one
// batch when the store's BatchSize is n and its BatchDelay long) and
// returns how many were stored and how many failed.
func ingestRound(t *testing.T, s *Store, first, n int, edit func(*api.Report)) (stored, failed int, errs []error) {
	t.Helper()
	results := make(chan error, n)
	for i := range n {
		go func() {
			results <- s.Ingest(context.Background(), "staging", report(first+i, edit), ident(report(first+i, edit)), t0)
		}()
	}
	for range n {
		if err := <-results; err != nil {
			failed++
			errs = append(errs, err)
		} else {
			stored++
		}
	}
	return stored, failed, errs
}

// TestDiskFull fills a real (tmpfs) file system under the database: the
// stored counter counts only what was committed, every refused report is a
// write error, the batch is not retried report by report, SQLite's own
// rollback is not followed by a failing ROLLBACK, and the log stays short.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	dir := tmpfs.Mount(t, 192<<10)
	logs := &lineBuffer{}
	const batch = 8
	s, err := Open(context.Background(), filepath.Join(dir, "census.db"), Options{
		BatchSize:  batch,
		BatchDelay: time.Hour, // a batch commits when it is full: rounds of 8 are batches of 8
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	padded := func(r *api.Report) { r.OSVersion = strings.Repeat("x", 200) }

	var stored, failed, rounds int
	for ; failed == 0; rounds++ {
		if rounds == 1000 {
			t.Fatalf("the tmpfs did not fill up after %d reports", stored)
		}
		n, f, _ := ingestRound(t, s, rounds*batch, batch, padded)
		stored, failed = stored+n, failed+f
	}
	const fullRounds = 40
	var lastErrs []error
	for i := range fullRounds {
		n, f, errs := ingestRound(t, s, (rounds+i)*batch, batch, padded)
		stored, failed, lastErrs = stored+n, failed+f, errs
	}
	if len(lastErrs) == 0 || !strings.Contains(lastErrs[0].Error(), "full") {
		t.Fatalf("reports on a full disk were stored, or failed with %v; want a disk-full error", lastErrs)
	}
	st := s.Stats()
	if st.Reports != uint64(stored) || st.WriteErrors != uint64(failed) {
		t.Errorf("Stats = %+v; want %d reports stored, %d write errors", st, stored, failed)
	}
	var hosts int
	if err := s.db.QueryRow(`SELECT count(*) FROM hosts`).Scan(&hosts); err != nil {
		t.Fatal(err)
	}
	if hosts != stored {
		t.Errorf("database holds %d hosts; %d reports were acknowledged as stored", hosts, stored)
	}
	lines := logs.lines()
	text := strings.Join(lines, "\n")
	if len(lines) > 2*failureLogBurst {
		t.Errorf("%d failed batches logged %d lines; want at most %d:\n%s", fullRounds, len(lines), 2*failureLogBurst, text)
	}
	for _, bad := range []string{"rollback failed", "one by one"} {
		if strings.Contains(text, bad) {
			t.Errorf("log mentions %q:\n%s", bad, text)
		}
	}
}

// TestRowErrorSparesTheBatch damages one host's stored history: its report
// fails, the reports that shared its batch are stored.
func TestRowErrorSparesTheBatch(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		const batch = 3
		s, _ := openStore(t, db, Options{BatchSize: batch, BatchDelay: time.Hour})
		if n, _, errs := ingestRound(t, s, 0, batch, nil); n != batch {
			t.Fatalf("first round: %v", errs)
		}
		execSQL(t, s, `UPDATE hosts SET history = 'not json' WHERE host_id = ?`, hostID(1))
		withResult := func(r *api.Report) {
			r.LastUpdateResult = &api.UpdateResult{Time: t0, Target: "16.4.7", Success: true}
		}
		stored, failed, errs := ingestRound(t, s, 0, batch, withResult)
		if stored != batch-1 || failed != 1 || !errors.Is(errs[0], errStoredHistory) {
			t.Fatalf("round with one damaged host: %d stored, %d failed (%v); want %d stored and a damaged-history error", stored, failed, errs, batch-1)
		}
		if st := s.Stats(); st.Reports != 2*batch-1 || st.WriteErrors != 1 {
			t.Errorf("Stats = %+v; want %d reports, 1 write error", st, 2*batch-1)
		}
		execSQL(t, s, `UPDATE hosts SET history = '[]' WHERE host_id = ?`, hostID(1)) // for Export
		for _, n := range []int{0, 2} {
			if h := history(t, s, n); len(h) != 1 || h[0] != "16.4.7" {
				t.Errorf("history of host %d = %v; want the new result stored", n, h)
			}
		}
	})
}

// TestDatabaseFilesPrivate checks the database, its WAL and its
// shared-memory file are created readable by their owner only.
func TestDatabaseFilesPrivate(t *testing.T) {
	t.Parallel()
	s, path := openStore(t, sqliteDB, Options{})
	if err := s.Ingest(context.Background(), "staging", report(0, nil), ident(report(0, nil)), t0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %#o; want 0600", filepath.Base(p), perm)
		}
	}
}

// execSQL runs a statement on s's database, its ? parameters written $1,
// $2, … for PostgreSQL.
func execSQL(t *testing.T, s *Store, query string, args ...any) {
	t.Helper()
	var err error
	if s.pg != nil {
		for i := range args {
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", i+1), 1)
		}
		_, err = s.pg.pool.Exec(context.Background(), query, args...)
	} else {
		_, err = s.db.Exec(query, args...)
	}
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
