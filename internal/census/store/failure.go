package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// errStoredHistory: a host's stored update history does not decode. Only
// that host's reports fail.
var errStoredHistory = errors.New("stored update history is damaged")

// rowError is a failure while writing one report of a transaction.
type rowError struct {
	index int // of the report in the transaction
	err   error
}

func (e *rowError) Error() string { return e.err.Error() }
func (e *rowError) Unwrap() error { return e.err }

// rowScoped reports whether err concerns one report only, so that the
// other reports of its batch may be stored without it: a constraint, a
// value too large or of the wrong type, a damaged stored history. A failed
// BEGIN or COMMIT, a full disk, an I/O error, a lock held too long or a
// corrupt file concern the database, and would fail every report again.
func rowScoped(err error) bool {
	var re *rowError
	if !errors.As(err, &re) {
		return false
	}
	if pgRowScoped(err) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_RANGE:
			return true
		}
		return false
	}
	return errors.Is(err, errStoredHistory)
}

// storeBatch commits the reports of batch in one transaction and answers
// every request. When the transaction fails because of one report, the
// reports are tried again one at a time, so that the others are stored;
// any other failure fails the whole batch at once, since trying again
// report by report would fail (and log) once per report. rows is scratch
// space. The caller holds writeMu.
func (s *Store) storeBatch(batch []*request, rows []hostRow) {
	for _, r := range batch {
		rows = append(rows, r.row)
	}
	err := s.commit(context.Background(), rows)
	switch {
	case err == nil:
		s.stored(batch, rows)
		return
	case len(batch) == 1 || !rowScoped(err):
		s.failed(batch, err)
		return
	}
	s.logFailure(slog.LevelWarn, "Census batch failed on one report; storing its reports one by one.",
		"reports", len(batch), "error", err.Error())
	for i := range batch {
		err := s.commit(context.Background(), rows[i:i+1])
		switch {
		case err == nil:
			s.stored(batch[i:i+1], rows[i:i+1])
		case rowScoped(err):
			s.failed(batch[i:i+1], err)
		default:
			s.failed(batch[i:], err)
			return
		}
	}
}

// stored counts one committed transaction of reqs, written as rows, and
// answers them: nil for a stored report, the refusal for one that
// conflicted with its host's binding.
func (s *Store) stored(reqs []*request, rows []hostRow) {
	s.batches.Add(1)
	for i, r := range reqs {
		if rows[i].refused != nil {
			s.refused.Add(1)
		} else {
			s.reports.Add(1)
		}
		r.done <- rows[i].refused
	}
}

// failed counts reqs as not stored because of err and answers them.
func (s *Store) failed(reqs []*request, err error) {
	s.writeErrors.Add(uint64(len(reqs)))
	s.logFailure(slog.LevelError, "Census reports not stored.", "reports", len(reqs), "error", err.Error())
	for _, r := range reqs {
		r.done <- err
	}
}

// logFailure logs a write failure, a bounded number of times a minute; the
// first line after a pause says how many were dropped.
func (s *Store) logFailure(level slog.Level, msg string, args ...any) {
	ok, dropped := s.failLog.Allow()
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "similar_lines_dropped", dropped)
	}
	s.logger.Log(context.Background(), level, msg, args...)
}

// watchRollbacks registers SQLite's rollback hook on conn, the write
// connection, so that rollback knows when SQLite has ended a failed
// transaction itself.
func (s *Store) watchRollbacks(conn *sql.Conn) error {
	return conn.Raw(func(dc any) error {
		h, ok := dc.(interface{ RegisterRollbackHook(sqlite.RollbackHookFn) })
		if !ok {
			return fmt.Errorf("the SQLite connection %T has no rollback hook", dc)
		}
		h.RegisterRollbackHook(func() { s.rolledBack.Store(true) })
		return nil
	})
}

// createPrivate creates the database file at path, readable and writable
// by its owner only, unless it exists, and reports whether it did. SQLite
// would create it with the umask's default (usually 0644), and it gives
// the WAL and shared-memory files the database file's mode: census reports
// name every host of the fleet and what it runs.
func createPrivate(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

// removeDatabase removes a database Open created and could not set up.
func removeDatabase(path string) {
	for _, p := range []string{path + "-wal", path + "-shm", path} {
		_ = os.Remove(p) // best effort: a file that is not there is fine
	}
}
