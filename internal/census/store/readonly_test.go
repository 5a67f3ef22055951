package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/tmpfs"
)

// fileHashes returns the SHA-256 of every file in dir, by name, but for
// shared-memory files, where every reader marks what it reads.
func fileHashes(t *testing.T, dir string) map[string][sha256.Size]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][sha256.Size]byte{}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "-shm") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

// TestOpenReadOnlyOnReadOnlyMount reads a database on a file system
// remounted read-only, where no file can be created or written (not even
// by root), and where Open fails.
func TestOpenReadOnlyOnReadOnlyMount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := tmpfs.Mount(t, 4<<20)
	path := filepath.Join(dir, "census.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Ingest(ctx, "staging", report(i, nil), ident(report(i, nil)), t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tmpfs.ReadOnly(t, dir)
	if s, err := Open(ctx, path, Options{}); err == nil {
		s.Close()
		t.Fatal("Open (read-write) succeeded on a read-only mount; the test proves nothing")
	}

	r, err := OpenReadOnly(ctx, path, Options{})
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	sum, err := r.Summary(ctx, t0, time.Hour)
	if err != nil || sum.TotalHosts != 3 {
		t.Fatalf("Summary = %+v, %v; want 3 hosts", sum, err)
	}
	var out bytes.Buffer
	if err := r.Export(ctx, &out, FormatJSON); err != nil || bytes.Count(out.Bytes(), []byte("\n")) != 3 {
		t.Errorf("Export = %v:\n%s", err, out.String())
	}
	if err := r.Ingest(ctx, "staging", report(9, nil), ident(report(9, nil)), t0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Ingest on a read-only store = %v; want ErrReadOnly", err)
	}
	if _, err := r.Forget(ctx, t0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Forget on a read-only store = %v; want ErrReadOnly", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenReadOnlyWhileWriting reads a database a proxy is writing to: it
// sees each committed report, and changes nothing on disk itself.
func TestOpenReadOnlyWhileWriting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, path := openStore(t, sqliteDB, Options{})
	if err := w.Ingest(ctx, "staging", report(0, nil), ident(report(0, nil)), t0); err != nil {
		t.Fatal(err)
	}
	before := fileHashes(t, filepath.Dir(path))
	r, err := OpenReadOnly(ctx, path, Options{})
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	defer r.Close()
	if sum, err := r.Summary(ctx, t0, time.Hour); err != nil || sum.TotalHosts != 1 {
		t.Fatalf("Summary = %+v, %v; want the 1 host committed", sum, err)
	}
	if after := fileHashes(t, filepath.Dir(path)); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("reading changed the database files")
	}
	if err := w.Ingest(ctx, "staging", report(1, nil), ident(report(1, nil)), t0); err != nil {
		t.Fatal(err)
	}
	if sum, err := r.Summary(ctx, t0, time.Hour); err != nil || sum.TotalHosts != 2 {
		t.Errorf("Summary after another report = %+v, %v; want 2 hosts", sum, err)
	}
}

// TestOpenReadOnlySchema checks a read-only open refuses, with a clear
// error, what it cannot read, and migrates nothing.
func TestOpenReadOnlySchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	withVersion := func(t *testing.T, v int) string {
		path := filepath.Join(t.TempDir(), "census.db")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if v > 0 {
			if _, err := db.Exec(migrations[0]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name    string
		version int
		want    error
	}{
		{"empty", 0, ErrNotCensus},
		{"older", schemaVersion - 1, ErrOlderSchema},
		{"newer", schemaVersion + 1, ErrNewerSchema},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := withVersion(t, tc.version)
			if s, err := OpenReadOnly(ctx, path, Options{}); !errors.Is(err, tc.want) {
				if err == nil {
					s.Close()
				}
				t.Fatalf("OpenReadOnly = %v; want %v", err, tc.want)
			}
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var v int
			if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != tc.version {
				t.Errorf("user_version after OpenReadOnly = %d, %v; want %d, unchanged", v, err, tc.version)
			}
		})
	}
	missing := filepath.Join(t.TempDir(), "typo.db")
	if _, err := OpenReadOnly(ctx, missing, Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly of a missing file = %v; want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", missing)
	}
}
