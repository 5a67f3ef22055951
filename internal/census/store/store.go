// Package store keeps census reports on the proxy: the latest report of
// every host plus a bounded history of update results. It has two
// backends: an embedded SQLite database (modernc.org/sqlite, pure Go, so
// the binary stays static), the default for one proxy, and PostgreSQL
// (postgres:// URLs, see postgres.go), which several proxies share.
//
// Writes are durable (WAL with synchronous=FULL: a report is on disk before
// Ingest returns) and group-committed: one writer goroutine commits whatever
// reports have queued up in one transaction, so a fleet reporting at once
// shares each fsync instead of waiting for one fsync apiece.
package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/lograte"
)

// Defaults for Options fields left zero.
const (
	DefaultHistoryPerHost = 20
	DefaultBatchSize      = 512
	DefaultBatchDelay     = time.Millisecond
	// DefaultReportBurst and DefaultReportEvery bound how often one host's
	// reports are stored: a burst of 20 (an admin's commands come seconds
	// apart), then one every 30 s. Agents report once per timer run,
	// minutes apart; a host reporting faster is broken or not a host.
	DefaultReportBurst = 20
	DefaultReportEvery = 30 * time.Second
	// busyTimeout bounds how long a connection waits for another writer
	// (another process, or IngestOneTx racing the batch writer).
	busyTimeout = 10 * time.Second
	// maxReaders bounds the read connections Summary and Export use.
	maxReaders = 4
	// maxGroupLen bounds the group name a caller passes to Ingest.
	maxGroupLen = 256
	// failureLogBurst and failureLogEvery bound the log lines of failed
	// writes: a full disk fails every batch, many a second.
	failureLogBurst = 5
	failureLogEvery = time.Minute
)

// ErrClosed is returned by Ingest after Close.
var ErrClosed = errors.New("census store is closed")

// ErrReadOnly is returned by the writing methods of a Store opened with
// OpenReadOnly.
var ErrReadOnly = errors.New("census store is open read-only")

// Options tune a Store. Zero values take the defaults.
type Options struct {
	// HistoryPerHost is how many update results are kept per host
	// (default DefaultHistoryPerHost).
	HistoryPerHost int
	// BatchSize is the most reports committed in one transaction
	// (default DefaultBatchSize).
	BatchSize int
	// ReportBurst and ReportEvery are each host's token bucket of stored
	// reports: ReportBurst at once, then one per ReportEvery (defaults
	// DefaultReportBurst and DefaultReportEvery; a negative ReportBurst is
	// no limit). A report beyond them is refused with api.ErrTooFrequent.
	ReportBurst int
	ReportEvery time.Duration
	// BatchDelay is how long the writer waits for more reports to join a
	// batch that is not full (default DefaultBatchDelay; negative means do
	// not wait, commit whatever has queued).
	BatchDelay time.Duration
	// Logger receives operational messages (default: discard).
	Logger *slog.Logger
	// PasswordFile, for a PostgreSQL database, is a file whose first line
	// is the password, so that it need not be in the URL on the command
	// line. Without it the password comes from the URL or libpq's
	// password file (PGPASSFILE, ~/.pgpass).
	PasswordFile string
}

// Store is a census database. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	wconn   *sql.Conn // the one write connection, used under writeMu
	writeMu sync.Mutex
	upsert  *sql.Stmt
	lookup  *sql.Stmt

	opts        Options
	logger      *slog.Logger
	failLog     *lograte.Limiter // bounds the lines of failed writes
	forgetBatch int              // hosts per Forget transaction (forgetBatch; tests lower it)

	// Counters of the batch writer: transactions and reports committed,
	// reports a database error kept out, and reports refused for
	// conflicting with their host's binding.
	batches, reports, writeErrors, refused atomic.Uint64
	health                                 writeHealth

	// rolledBack is set by SQLite's rollback hook on the write connection
	// when a transaction ends in a rollback, its own after an error (disk
	// full, I/O error) included; commit clears it at BEGIN.
	rolledBack atomic.Bool

	// pg is the PostgreSQL backend; nil for SQLite (db, wconn and the
	// statements). The writer, the rules and the counters are shared.
	pg *pgDB

	readOnly  bool // opened by OpenReadOnly: no writer, no write connection
	queue     chan *request
	closeMu   sync.RWMutex // guards closed against sends on queue
	closed    bool
	writerEnd chan struct{}
}

// request is one report waiting for the batch writer.
type request struct {
	row  hostRow
	done chan error
}

// Open opens (creating and migrating when needed) the database at path.
// The database runs in WAL mode with synchronous=FULL.
//
// Outcomes: a Store; or an error when path cannot be opened, is not a
// census database, or has a schema newer than this binary understands.
//
// A postgres:// or postgresql:// URL opens a PostgreSQL database instead
// (see OpenPostgres).
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if IsPostgresURL(path) {
		return OpenPostgres(ctx, path, opts)
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open census database %q: path must be non-empty and contain no '?' or '#'", path)
	}
	opts = opts.withDefaults()
	logger := opts.Logger
	created, err := createPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("open census database %s: %w", path, err)
	}
	dsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)",
		path, busyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open census database %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxReaders + 1)
	db.SetMaxIdleConns(maxReaders + 1)
	s := &Store{db: db, opts: opts, logger: logger, forgetBatch: forgetBatch,
		failLog: newFailureLimiter()}
	if err := s.init(ctx, path); err != nil {
		if s.wconn != nil {
			s.wconn.Close()
		}
		db.Close()
		if created {
			removeDatabase(path)
		}
		return nil, err
	}
	s.startWriter()
	logger.DebugContext(ctx, "Census database opened.", "path", path,
		"history_per_host", opts.HistoryPerHost, "batch_size", opts.BatchSize, "batch_delay", opts.BatchDelay)
	return s, nil
}

// withDefaults fills the zero fields of opts with the defaults.
func (opts Options) withDefaults() Options {
	if opts.HistoryPerHost <= 0 {
		opts.HistoryPerHost = DefaultHistoryPerHost
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchDelay == 0 {
		opts.BatchDelay = DefaultBatchDelay
	}
	if opts.ReportBurst == 0 {
		opts.ReportBurst = DefaultReportBurst
	}
	if opts.ReportEvery <= 0 {
		opts.ReportEvery = DefaultReportEvery
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return opts
}

// newFailureLimiter bounds the log lines of failed writes.
func newFailureLimiter() *lograte.Limiter {
	return lograte.New(failureLogBurst, failureLogEvery, nil)
}

// startWriter starts the group-commit writer.
func (s *Store) startWriter() {
	s.queue = make(chan *request, s.opts.BatchSize)
	s.writerEnd = make(chan struct{})
	go s.writer()
}

// init checks the pragmas took effect, migrates the schema and prepares the
// write statements on the write connection.
func (s *Store) init(ctx context.Context, path string) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("open census database %s: %w", path, err)
	}
	s.wconn = conn
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("open census database %s: read journal mode: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("open census database %s: journal mode is %q, want wal", path, mode)
	}
	if err := migrate(ctx, conn); err != nil {
		return fmt.Errorf("open census database %s: %w", path, err)
	}
	if err := s.watchRollbacks(conn); err != nil {
		return fmt.Errorf("open census database %s: %w", path, err)
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{{&s.upsert, upsertSQL}, {&s.lookup, lookupSQL}} {
		if *p.stmt, err = conn.PrepareContext(ctx, p.sql); err != nil {
			return fmt.Errorf("open census database %s: prepare statement: %w", path, err)
		}
	}
	return nil
}

// Stats counts the batch writer's work since Open.
type Stats struct {
	Batches     uint64 // transactions committed by the batch writer
	Reports     uint64 // reports in them, each stored
	WriteErrors uint64 // reports not stored because the database failed
	Refused     uint64 // reports refused for conflicting with their host's binding
}

// Stats returns the batch writer's counters; Reports/Batches is the mean
// group-commit size. Only committed transactions count as batches and
// reports; a report whose transaction failed counts as a write error.
func (s *Store) Stats() Stats {
	return Stats{Batches: s.batches.Load(), Reports: s.reports.Load(), WriteErrors: s.writeErrors.Load(), Refused: s.refused.Load()}
}

// Close commits the reports already queued, stops the writer and closes the
// database. Ingest calls after Close return ErrClosed.
func (s *Store) Close() error {
	if s.pg != nil {
		return s.closePostgres()
	}
	if s.readOnly {
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("close census database: %w", err)
		}
		return nil
	}
	if !s.stopWriter() {
		return nil
	}
	var errs []error
	for _, st := range []*sql.Stmt{s.upsert, s.lookup} {
		errs = append(errs, st.Close())
	}
	errs = append(errs, s.wconn.Close(), s.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close census database: %w", err)
	}
	return nil
}

// stopWriter closes the queue and waits for the writer to commit what was
// queued. It reports false when an earlier Close already did.
func (s *Store) stopWriter() bool {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return false
	}
	s.closed = true
	close(s.queue)
	s.closeMu.Unlock()
	<-s.writerEnd
	return true
}

// Ingest sets r's update group to group (the group of the enrollment token
// it came with, which wins over what the report claims), and stores it as
// the host's latest report, adding its last update result to the host's
// history. id is what r's verified signature proved: the first report of a
// host id binds id.Key and group to it, and later ones must match them and
// carry a larger id.Seq (see api.Identity). It returns once the transaction
// that holds the report has committed to disk. r comes decoded
// (api.DecodeReport); Ingest checks it again (Report.Validate) and refuses
// one without a host id.
//
// Outcomes: nil when stored; an error wrapping api.ErrInvalidReport when
// the report is refused (nothing is stored); one wrapping
// api.ErrHostConflict when it conflicts with its host's binding, or
// api.ErrQuota when it exceeds id.Quota or the host's report rate
// (Options.ReportBurst)
// (nothing is stored); ErrClosed after Close; ErrReadOnly on a read-only Store;
// ctx's error when ctx ends first (the report may still be committed);
// otherwise a database error.
func (s *Store) Ingest(ctx context.Context, group string, r api.Report, id api.Identity, now time.Time) error {
	if s.readOnly {
		return ErrReadOnly
	}
	row, err := prepare(group, r, id, now)
	if err != nil {
		return err
	}
	req := &request{row: row, done: make(chan error, 1)}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.queue <- req:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return fmt.Errorf("store census report: %w", ctx.Err())
	}
	s.closeMu.RUnlock()
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("store census report: %w", ctx.Err())
	}
}

// IngestOneTx is Ingest with one transaction (and so one fsync) per report,
// without the batch writer: the baseline the group commit is measured
// against.
func (s *Store) IngestOneTx(ctx context.Context, group string, r api.Report, id api.Identity, now time.Time) error {
	if s.readOnly {
		return ErrReadOnly
	}
	row, err := prepare(group, r, id, now)
	if err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	rows := []hostRow{row}
	if err := s.commit(ctx, rows); err != nil {
		return err
	}
	return rows[0].refused
}

// forgetBatch is how many hosts Forget deletes per transaction: intake
// waits for each, so a first sweep of a large database never stalls it.
const forgetBatch = 1000

// ErrAllStale is returned by Forget when no host was seen since the cutoff.
var ErrAllStale = errors.New("no census host was seen since the cutoff")

// Forget deletes the hosts last seen before cutoff, with their update
// history, and returns how many it deleted: a fleet that autoscales would
// otherwise keep every host it ever saw. The summary counts follow. It
// deletes in transactions of forgetBatch hosts and stops between them when
// ctx ends.
//
// It never deletes every host: when none was seen since cutoff it deletes
// nothing and returns ErrAllStale. A whole fleet silent for the retention
// time is far more likely a clock that jumped, or a proxy that lost its
// agents, than hosts an operator wants gone.
func (s *Store) Forget(ctx context.Context, cutoff time.Time) (int, error) {
	if s.readOnly {
		return 0, ErrReadOnly
	}
	ms := cutoff.UnixMilli()
	var newest sql.NullInt64
	var err error
	if s.pg != nil {
		err = s.pg.pool.QueryRow(ctx, `SELECT max(last_seen) FROM hosts`).Scan(&newest)
	} else {
		err = s.db.QueryRowContext(ctx, `SELECT max(last_seen) FROM hosts`).Scan(&newest)
	}
	if err != nil {
		return 0, fmt.Errorf("forget census hosts: %w", err)
	}
	if !newest.Valid {
		return 0, nil // no hosts
	}
	if newest.Int64 < ms {
		return 0, fmt.Errorf("forget census hosts: %w (newest report %s, cutoff %s)", ErrAllStale,
			time.UnixMilli(newest.Int64).UTC().Format(time.RFC3339), cutoff.UTC().Format(time.RFC3339))
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("forget census hosts: %w", err)
		}
		n, err := s.forgetSome(ms, s.forgetBatch)
		total += n
		if err != nil {
			return total, err
		}
		if n < s.forgetBatch {
			break
		}
	}
	if total > 0 {
		s.logger.InfoContext(ctx, "Forgot census hosts not seen since the cutoff.", "hosts", total, "cutoff", cutoff.UTC())
	}
	return total, nil
}

// forgetSome deletes up to limit hosts last seen before cutoffMs in one
// transaction on the write connection. Like the batch writer's, the
// transaction does not follow a context: it ends here, committed or rolled
// back, never by a context that ends later (that rollback could land on the
// next transaction of the shared connection).
func (s *Store) forgetSome(cutoffMs int64, limit int) (int, error) {
	ctx := context.Background()
	if s.pg != nil {
		return s.pg.forgetSome(ctx, cutoffMs, limit)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return 0, fmt.Errorf("forget census hosts: begin transaction: %w", err)
	}
	res, err := s.wconn.ExecContext(ctx, `DELETE FROM hosts WHERE id IN
		(SELECT id FROM hosts WHERE last_seen < ? ORDER BY last_seen LIMIT ?)`, cutoffMs, limit)
	if err != nil {
		s.rollback()
		return 0, fmt.Errorf("forget census hosts: delete hosts: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		s.rollback()
		return 0, fmt.Errorf("forget census hosts: %w", err)
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		s.rollback()
		return 0, fmt.Errorf("forget census hosts: commit: %w", err)
	}
	return int(n), nil
}

// withinQuota checks that r, the first report of a host, keeps its group
// within the quota of the token it came with.
func (s *Store) withinQuota(ctx context.Context, r *hostRow) error {
	q := r.id.Quota
	if q.MaxHosts > 0 {
		var n int
		if err := s.wconn.QueryRowContext(ctx, `SELECT count(*) FROM hosts WHERE grp = ?`, r.UpdateGroup).Scan(&n); err != nil {
			return fmt.Errorf("count the group's hosts: %w", err)
		}
		if n >= q.MaxHosts {
			return api.ErrMaxHosts
		}
	}
	if q.NewHostsPerHour > 0 {
		var n int
		since := r.lastSeen - time.Hour.Milliseconds()
		if err := s.wconn.QueryRowContext(ctx, `SELECT count(*) FROM hosts WHERE grp = ? AND first_seen > ?`, r.UpdateGroup, since).Scan(&n); err != nil {
			return fmt.Errorf("count the group's new hosts: %w", err)
		}
		if n >= q.NewHostsPerHour {
			return api.ErrNewHostsPerHour
		}
	}
	return nil
}

// ErrUnknownHost is returned by Reenroll for a host id the store does not
// hold.
var ErrUnknownHost = errors.New("no census host has this host id")

// Reenroll unbinds a host's key and group, so that the next signed report
// of hostID binds its key and its token's group anew: what an admin does
// for a host that was reinstalled (a new key) or moved to another group.
// The host's record and history stay; so does its last sequence number.
//
// Outcomes: nil; ErrUnknownHost; ErrReadOnly; or a database error.
func (s *Store) Reenroll(ctx context.Context, hostID string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	var found bool
	var err error
	if s.pg != nil {
		found, err = s.pg.reenroll(ctx, hostID)
	} else {
		found, err = s.reenrollSQLite(ctx, hostID)
	}
	if err != nil {
		return fmt.Errorf("re-enroll census host %s: %w", hostID, err)
	}
	if !found {
		return fmt.Errorf("re-enroll census host %s: %w", hostID, ErrUnknownHost)
	}
	s.logger.InfoContext(ctx, "Census host re-enrolled: its next signed report binds a key and group anew.", "host_id", hostID)
	return nil
}

// reenrollSQLite clears the host's key and reports whether the host exists.
func (s *Store) reenrollSQLite(ctx context.Context, hostID string) (bool, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	res, err := s.wconn.ExecContext(ctx, `UPDATE hosts SET host_key = NULL WHERE host_id = ?`, hostID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// prepare checks one report for storage.
func prepare(group string, r api.Report, id api.Identity, now time.Time) (hostRow, error) {
	if err := r.Validate(); err != nil {
		return hostRow{}, err
	}
	if (id.Key != nil && len(id.Key) != ed25519.PublicKeySize) || id.Seq < 0 || (id.Key == nil && id.Seq != 0) {
		return hostRow{}, fmt.Errorf("store census report: the signer's key must be none or %d bytes, and its sequence number not negative (zero when unsigned)", ed25519.PublicKeySize)
	}
	if r.HostID == "" {
		return hostRow{}, fmt.Errorf("%w: host_id: missing", api.ErrInvalidReport)
	}
	if group == "" || len(group) > maxGroupLen {
		return hostRow{}, fmt.Errorf("store census report: group name must be 1 to %d bytes, got %d", maxGroupLen, len(group))
	}
	r.UpdateGroup = group
	return newHostRow(r, id, now), nil
}

// writer is the group-commit loop: it takes the first queued report, gathers
// more until BatchSize or BatchDelay, commits them in one transaction and
// answers every request with the outcome.
func (s *Store) writer() {
	defer close(s.writerEnd)
	batch := make([]*request, 0, s.opts.BatchSize)
	rows := make([]hostRow, 0, s.opts.BatchSize)
	var timer *time.Timer
	for {
		first, ok := <-s.queue
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		open := s.gather(&batch, &timer)
		s.writeMu.Lock()
		s.storeBatch(batch, rows[:0])
		s.writeMu.Unlock()
		if !open {
			return
		}
	}
}

// gather adds queued requests to batch until it holds BatchSize, the queue is
// empty and BatchDelay has passed, or the queue is closed (then it reports
// false).
func (s *Store) gather(batch *[]*request, timer **time.Timer) bool {
	for len(*batch) < s.opts.BatchSize {
		select {
		case r, ok := <-s.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
			continue
		default:
		}
		if s.opts.BatchDelay < 0 {
			return true
		}
		if *timer == nil {
			*timer = time.NewTimer(s.opts.BatchDelay)
		} else {
			(*timer).Reset(s.opts.BatchDelay)
		}
	wait:
		for len(*batch) < s.opts.BatchSize {
			select {
			case r, ok := <-s.queue:
				if !ok {
					(*timer).Stop()
					return false
				}
				*batch = append(*batch, r)
			case <-(*timer).C:
				break wait
			}
		}
		(*timer).Stop()
		return true
	}
	return true
}

// commit writes rows in one transaction on the write connection. The caller
// holds writeMu. The transaction is plain BEGIN/COMMIT on the dedicated
// connection, so the statements prepared on it at Open are used as they are
// (database/sql's Tx.Stmt would prepare them again for every batch).
//
// A failure while writing one row is returned as a *rowError. A row that
// conflicts with its host's binding is not written and does not fail the
// transaction: its refused field says why. So does a row that would
// exceed its token's quota or comes too soon after its host's last one.
func (s *Store) commit(ctx context.Context, rows []hostRow) (err error) {
	defer func() { s.health.record(err, time.Now()) }()
	if s.pg != nil {
		return s.pg.commit(ctx, rows, s.opts)
	}
	s.rolledBack.Store(false)
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("store census reports: begin transaction: %w", err)
	}
	for i := range rows {
		rows[i].refused = nil
		err := s.write(ctx, &rows[i])
		if errors.Is(err, api.ErrHostConflict) || errors.Is(err, api.ErrQuota) {
			rows[i].refused = err
			continue
		}
		if err != nil {
			s.rollback()
			return &rowError{index: i, err: fmt.Errorf("store census report of host %s: %w", rows[i].HostID, err)}
		}
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		s.rollback()
		return fmt.Errorf("store census reports: commit %d reports: %w", len(rows), err)
	}
	return nil
}

// rollback ends a failed transaction on the write connection, unless
// SQLite has already rolled it back itself, as it may after a full disk or
// an I/O error: a ROLLBACK then only fails with "no transaction is active".
func (s *Store) rollback() {
	if s.rolledBack.Load() {
		return
	}
	if _, err := s.wconn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		s.logFailure(slog.LevelWarn, "Census transaction rollback failed.", "error", err.Error())
	}
}

// write checks one report against its host's binding and upserts the host,
// merging the report's update result into the host's history. A report
// that conflicts with the binding is not written; the error wraps
// api.ErrHostConflict.
func (s *Store) write(ctx context.Context, r *hostRow) error {
	cur, err := s.current(ctx, r.HostID)
	if err != nil {
		return err
	}
	if err := cur.checkBinding(r); err != nil {
		return fmt.Errorf("host %s: %w", r.HostID, err)
	}
	if r.tokens, err = cur.spend(r.lastSeen, s.opts.ReportBurst, s.opts.ReportEvery); err != nil {
		return fmt.Errorf("host %s: %w", r.HostID, err)
	}
	if !cur.exists {
		if err := s.withinQuota(ctx, r); err != nil {
			return fmt.Errorf("host %s: %w", r.HostID, err)
		}
	}
	history, err := cur.history(r, s.opts.HistoryPerHost)
	if err != nil {
		return err
	}
	if _, err := s.upsert.ExecContext(ctx, r.args(history)...); err != nil {
		return fmt.Errorf("upsert host: %w", err)
	}
	return nil
}

// storedHost is what the writer reads of a host before storing its report.
type storedHost struct {
	exists     bool
	group      string
	key        []byte // nil: not bound yet (or re-enrolled)
	seq        int64
	lastSeen   int64 // proxy clock, unix ms
	tokens     sql.NullFloat64
	lastTime   sql.NullInt64
	lastTarget string
	storedHist string
}

// current reads the stored state of a host.
func (s *Store) current(ctx context.Context, hostID string) (storedHost, error) {
	h := storedHost{exists: true}
	err := s.lookup.QueryRowContext(ctx, hostID).Scan(&h.group, &h.key, &h.seq, &h.lastSeen, &h.tokens, &h.lastTime, &h.lastTarget, &h.storedHist)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return storedHost{storedHist: "[]"}, nil
	case err != nil:
		return storedHost{}, fmt.Errorf("read stored host: %w", err)
	}
	return h, nil
}

// spend takes one report from the host's token bucket (burst reports,
// refilled one per every since the last stored report) at now, and
// returns what is left to store, or api.ErrTooFrequent when it is empty.
// A negative burst is no limit (nothing stored).
func (h *storedHost) spend(now int64, burst int, every time.Duration) (any, error) {
	if burst < 0 {
		return nil, nil
	}
	tokens := float64(burst)
	if h.exists && h.tokens.Valid {
		refill := float64(now-h.lastSeen) / float64(every.Milliseconds())
		tokens = min(float64(burst), h.tokens.Float64+max(0, refill))
	}
	if tokens < 1 {
		return nil, api.ErrTooFrequent
	}
	return tokens - 1, nil
}

// checkBinding checks r against the host's binding: an unsigned r is
// admitted only for a host without a bound key; a host not bound yet (or
// re-enrolled) takes a signed r's key and group; a bound one needs the
// same key and the same group. Either way r's sequence number must be
// larger than the last one stored, so that a report captured before a
// re-enrollment cannot be replayed to bind its key.
func (h *storedHost) checkBinding(r *hostRow) error {
	switch {
	case r.id.Key == nil:
		// Unsigned: only for a host with no bound key; it binds nothing.
		if h.key != nil {
			return api.ErrUnsignedBound
		}
		return nil
	case h.key != nil && !bytes.Equal(h.key, r.id.Key):
		return api.ErrKeyMismatch
	case h.key != nil && h.group != r.UpdateGroup:
		return api.ErrGroupMismatch
	case h.exists && r.id.Seq <= h.seq:
		return api.ErrReplay
	}
	return nil
}

// history returns the host's update history with r's result merged in, or
// nil when the stored history stays as it is: r has no result, or the
// same result as the host's last report (each run reports it again).
func (h *storedHost) history(r *hostRow, keep int) (any, error) {
	if !r.hasResult {
		return nil, nil
	}
	if h.lastTime.Valid && h.lastTime.Int64 == r.resultTime && h.lastTarget == r.resultTarget {
		return nil, nil
	}
	merged, err := mergeHistory(h.storedHist, r.entry(), keep)
	if err != nil {
		return nil, err
	}
	return merged, nil
}
