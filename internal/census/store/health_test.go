package store

import (
	"context"
	"testing"
)

// TestWriteFailure: WriteFailure reports writes failing since the first
// failed commit, keeps that time while they go on failing, and clears on
// the next commit that succeeds.
func TestWriteFailure(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, sqliteDB, Options{})
	ctx := context.Background()
	if since, err := s.WriteFailure(); !since.IsZero() || err != nil {
		t.Fatalf("WriteFailure of a new store = %v, %v; want healthy", since, err)
	}
	// A read-only write connection makes every commit fail in SQLite.
	setQueryOnly := func(on bool) {
		t.Helper()
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		v := "0"
		if on {
			v = "1"
		}
		if _, err := s.wconn.ExecContext(ctx, "PRAGMA query_only = "+v); err != nil {
			t.Fatal(err)
		}
	}
	setQueryOnly(true)
	if err := s.Ingest(ctx, "staging", report(1, nil), ident(report(1, nil)), t0); err == nil {
		t.Fatal("Ingest on a read-only connection succeeded")
	}
	first, err := s.WriteFailure()
	if first.IsZero() || err == nil {
		t.Fatalf("WriteFailure after a failed write = %v, %v; want failing", first, err)
	}
	_ = s.Ingest(ctx, "staging", report(2, nil), ident(report(2, nil)), t0)
	if since, _ := s.WriteFailure(); !since.Equal(first) {
		t.Errorf("WriteFailure after a second failure = %v; want the first failure's time %v", since, first)
	}
	setQueryOnly(false)
	if err := s.Ingest(ctx, "staging", report(3, nil), ident(report(3, nil)), t0); err != nil {
		t.Fatal(err)
	}
	if since, err := s.WriteFailure(); !since.IsZero() || err != nil {
		t.Errorf("WriteFailure after a successful write = %v, %v; want healthy", since, err)
	}
}
