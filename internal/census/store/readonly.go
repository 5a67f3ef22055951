package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Schema version errors of OpenReadOnly (and, for a newer schema, Open).
var (
	// ErrNewerSchema: the database was written by a newer teleport-update.
	ErrNewerSchema = errors.New("the census database has a newer schema than this teleport-update reads")
	// ErrOlderSchema: the database has not been migrated to this binary's
	// schema yet; a read-only open does not migrate.
	ErrOlderSchema = errors.New("the census database has an older schema than this teleport-update reads")
	// ErrNotCensus: the file is an SQLite database without a census schema.
	ErrNotCensus = errors.New("not a census database")
)

// OpenReadOnly opens the database at path for Summary and Export. It never
// writes to it: no file is created, no journal mode set, no schema
// migrated. So it reads a database the caller may only read (a backup, a
// read-only mount, the file of another user), also while a proxy writes
// to it. Ingest, IngestOneTx and Forget return ErrReadOnly.
//
// A database in WAL mode is read through its shared-memory file, which
// SQLite creates next to it when missing. Where it cannot (a read-only
// directory) and no write-ahead log holds data either, so that no writer
// has the database open, the file is read as immutable.
//
// Outcomes: a Store; an error wrapping fs.ErrNotExist when there is no
// file at path; one wrapping ErrNotCensus, ErrOlderSchema or
// ErrNewerSchema; or the error that kept the file from being read.
//
// A postgres:// or postgresql:// URL opens a PostgreSQL database read-only
// (see OpenPostgresReadOnly).
func OpenReadOnly(ctx context.Context, path string, opts Options) (*Store, error) {
	if IsPostgresURL(path) {
		return OpenPostgresReadOnly(ctx, path, opts)
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open census database %q: path must be non-empty and contain no '?' or '#'", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open census database: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open census database %s: not a regular file", path)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, version, err := openReader(ctx, path, "")
	if cannotShare(err) && !walHoldsData(path) {
		logger.DebugContext(ctx, "Census database read as immutable: its shared-memory file cannot be created.", "path", path, "error", err)
		db, version, err = openReader(ctx, path, "&immutable=1")
	}
	if err != nil {
		return nil, fmt.Errorf("open census database %s read-only: %w", path, err)
	}
	if err := checkSchema(version, schemaVersion); err != nil {
		db.Close()
		return nil, fmt.Errorf("open census database %s: %w", path, err)
	}
	return &Store{db: db, opts: opts, logger: logger, readOnly: true}, nil
}

// openReader opens path read-only with the extra URI parameters and reads
// its schema version.
func openReader(ctx context.Context, path, extra string) (*sql.DB, int, error) {
	uri := "file:" + (&url.URL{Path: path}).EscapedPath() +
		fmt.Sprintf("?mode=ro&_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()) + extra
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, 0, err
	}
	db.SetMaxOpenConns(maxReaders)
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		db.Close()
		return nil, 0, err
	}
	return db, v, nil
}

// cannotShare reports whether err is SQLite failing to open or create the
// shared-memory file of a WAL database in a directory it may not write.
func cannotShare(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY_DIRECTORY, sqlite3.SQLITE_READONLY_CANTINIT:
		return true
	}
	return false
}

// walHoldsData reports whether path's write-ahead log exists and is not
// empty (or cannot be looked at): then the database file alone is not the
// whole database, and reading it as immutable would miss reports.
func walHoldsData(path string) bool {
	fi, err := os.Stat(path + "-wal")
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return err != nil || fi.Size() > 0
}

// checkSchema checks a read-only database has this binary's schema
// version, schemaVersion.
func checkSchema(v, schemaVersion int) error {
	switch {
	case v == schemaVersion:
		return nil
	case v == 0:
		return fmt.Errorf("%w (schema version 0)", ErrNotCensus)
	case v < schemaVersion:
		return fmt.Errorf("%w: version %d, this binary reads %d; run proxy serve of this version on it once to migrate it",
			ErrOlderSchema, v, schemaVersion)
	default:
		return fmt.Errorf("%w: version %d, this binary reads up to %d; use the teleport-update of the proxy that wrote it",
			ErrNewerSchema, v, schemaVersion)
	}
}
