package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gravitational/teleport-update/api"
)

// pgMaxConns bounds the connections one proxy opens to PostgreSQL: the
// writer's, Forget's, and a few readers for summary, export and find.
const pgMaxConns = 8

// pgDB is the PostgreSQL backend of a Store. Several proxies share one
// database: every write that depends on what is stored (a host's binding,
// a group's quota) first takes a transaction-scoped advisory lock on what
// it depends on (see lockKeys), so two proxies never both bind a new host
// or both admit the last host of a quota.
type pgDB struct {
	pool *pgxpool.Pool
	// reach follows the pings of watch; stopWatch ends it and waits.
	reach     writeHealth
	stopWatch func()
}

// pgPingEvery is how often a proxy pings its PostgreSQL database, and
// how long it waits for the answer.
const pgPingEvery = 2 * time.Second

// watch pings the database every pgPingEvery until stop is closed and
// records the outcomes in reach.
func (p *pgDB) watch(stop <-chan struct{}) {
	tick := time.NewTicker(pgPingEvery)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), pgPingEvery)
		err := p.pool.Ping(ctx)
		cancel()
		if err != nil {
			err = fmt.Errorf("census database does not answer: %w", err)
		}
		p.reach.record(err, time.Now())
	}
}

// startWatch starts watch.
func (p *pgDB) startWatch() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		p.watch(stop)
	}()
	p.stopWatch = func() { close(stop); <-done }
}

// IsPostgresURL reports whether a census database names a PostgreSQL
// database (postgres:// or postgresql://) rather than an SQLite file.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Redact returns a census database name fit for logs and messages: a
// PostgreSQL URL without its password.
func Redact(s string) string {
	if !IsPostgresURL(s) {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}

// OpenPostgres opens (creating and migrating the schema when needed) the
// census in the PostgreSQL database at url. The password comes from the
// URL, from Options.PasswordFile, or from libpq's password file
// (PGPASSFILE, ~/.pgpass). sslmode and sslrootcert in the URL set TLS
// (sslmode=verify-full checks the server's certificate and name).
//
// Outcomes: a Store; or an error when the database cannot be reached, its
// census schema is newer than this binary understands, or it cannot be
// migrated. The error names the database without its password.
func OpenPostgres(ctx context.Context, url string, opts Options) (*Store, error) {
	return openPostgres(ctx, url, opts, false)
}

// OpenPostgresReadOnly opens the census in the PostgreSQL database at url
// for Summary and Export: no schema is created or migrated, and the
// writing methods return ErrReadOnly.
//
// Outcomes: a Store; an error wrapping ErrNotCensus, ErrOlderSchema or
// ErrNewerSchema; or the error that kept the database from being read.
func OpenPostgresReadOnly(ctx context.Context, url string, opts Options) (*Store, error) {
	return openPostgres(ctx, url, opts, true)
}

func openPostgres(ctx context.Context, dbURL string, opts Options, readOnly bool) (*Store, error) {
	name := Redact(dbURL)
	opts = opts.withDefaults()
	p, err := newPool(ctx, dbURL, opts)
	if err != nil {
		return nil, fmt.Errorf("open census database %s: %w", name, err)
	}
	pool := p.pool
	if readOnly {
		err = p.checkSchema(ctx)
	} else {
		err = p.migrate(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open census database %s: %w", name, err)
	}
	s := &Store{pg: p, opts: opts, logger: opts.Logger, forgetBatch: forgetBatch, readOnly: readOnly}
	s.failLog = newFailureLimiter()
	if !readOnly {
		p.warnAsyncCommit(ctx, s)
		p.startWatch()
		s.startWriter()
	}
	opts.Logger.DebugContext(ctx, "Census database opened.", "database", name, "read_only", readOnly,
		"history_per_host", opts.HistoryPerHost, "batch_size", opts.BatchSize, "batch_delay", opts.BatchDelay)
	return s, nil
}

// newPool connects to the database at dbURL.
func newPool(ctx context.Context, dbURL string, opts Options) (*pgDB, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	if opts.PasswordFile != "" {
		pw, err := readPasswordFile(opts.PasswordFile)
		if err != nil {
			return nil, err
		}
		cfg.ConnConfig.Password = pw
	}
	cfg.MaxConns = pgMaxConns
	cfg.ConnConfig.RuntimeParams["application_name"] = "teleport-update proxy"
	// The reads over every host (the summary, the rollout's counts) are
	// one scan of a table of some 100,000 rows: a parallel plan starts
	// worker processes that cost more than they save, and on a database
	// whose few CPUs are busy it took twice as long as a plain scan. A URL
	// that sets the parameter keeps its value.
	if _, ok := cfg.ConnConfig.RuntimeParams["max_parallel_workers_per_gather"]; !ok {
		cfg.ConnConfig.RuntimeParams["max_parallel_workers_per_gather"] = "0"
	}
	// The writer reads a batch's hosts by primary key through a prepared
	// statement. PostgreSQL may switch such a statement to a generic plan
	// made while the table was small or not analyzed yet, a sequential
	// scan, and keep it as the table grows: while a fleet enrolls, every
	// batch then read the whole table. A plan made for each execution
	// sees the table's size and the batch's keys. A URL that sets the
	// parameter keeps its value.
	if _, ok := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return &pgDB{pool: pool}, nil
}

// maxPasswordFile bounds a password file: a password is a line.
const maxPasswordFile = 4096

// readPasswordFile reads a password: the file's first line.
func readPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	if len(b) > maxPasswordFile {
		return "", fmt.Errorf("password file %s is larger than %d bytes", path, maxPasswordFile)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	return pw, nil
}

// warnAsyncCommit logs when the server acknowledges commits before they
// are on disk: then a report the proxy acknowledged may be lost in a
// crash of the database server.
func (p *pgDB) warnAsyncCommit(ctx context.Context, s *Store) {
	var mode string
	if err := p.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&mode); err == nil && mode == "off" {
		s.logger.WarnContext(ctx, "The census database has synchronous_commit=off: reports acknowledged to agents may be lost if the database server crashes.")
	}
}

// closePostgres stops the writer, after it has committed what is queued,
// and closes the connections.
func (s *Store) closePostgres() error {
	if !s.readOnly {
		if !s.stopWriter() {
			return nil
		}
		s.pg.stopWatch()
	}
	s.pg.pool.Close()
	return nil
}

// pgRowScoped reports whether err is PostgreSQL refusing one row's data
// (class 22, data exception, or 23, integrity constraint violation)
// rather than failing the database.
func pgRowScoped(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")
}

// lockKey is the advisory lock key of a host or a group: a 64-bit hash of
// its kind and name. A collision only makes two writers wait for each
// other.
func lockKey(kind, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// lockKeys takes the transaction's advisory locks on keys, in ascending
// order, so that two transactions locking overlapping sets never wait for
// each other in a circle.
func lockKeys(ctx context.Context, conn querier, keys []int64) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := conn.Exec(ctx, lockSQL, sortedKeys(keys))
	return err
}

// lockSQL takes the advisory locks of $1 in the array's order.
const lockSQL = `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS l(k, i) ORDER BY i`

// sortedKeys sorts keys and drops repeats.
func sortedKeys(keys []int64) []int64 {
	slices.Sort(keys)
	return slices.Compact(keys)
}

// pgHost is a host's state while a batch is written: what is stored,
// updated by each report of the batch admitted so far.
type pgHost struct {
	storedHost
	firstSeen int64
	row       *hostRow // the host's last admitted report; nil while none
}

// pgHostSQL reads what commit needs of the hosts of a batch.
const pgHostSQL = `SELECT host_id, grp, host_key, seq, last_seen, rate_tokens, last_update_time,
	last_update_target, history, first_seen FROM hosts WHERE host_id = ANY($1)`

// commit writes rows in one transaction: it locks the hosts, reads them,
// applies each report's rules in order (the binding, the report rate, the
// quota of a new host, the history) as SQLite's writer does row by row,
// then upserts each host's final state in one statement. Rows refused by
// the rules get their refused field set and do not fail the transaction.
//
// The statements go out in two pipelines (BEGIN, lock, read; upsert,
// COMMIT), two round trips per batch, plus two when a new host counts
// against a quota. A connection an error leaves inside the transaction is
// closed by the pool on release, which rolls the transaction back.
func (p *pgDB) commit(ctx context.Context, rows []hostRow, opts Options) error {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("store census reports: %w", err)
	}
	defer conn.Release()
	hosts, err := lockAndRead(ctx, conn, rows)
	if err != nil {
		return fmt.Errorf("store census reports: %w", err)
	}
	quotas := newQuotaCounts()
	if err := lockQuotaGroups(ctx, conn, rows, hosts); err != nil {
		return fmt.Errorf("store census reports: lock groups: %w", err)
	}
	for i := range rows {
		rows[i].refused = nil
		err := applyRow(ctx, conn, hosts[rows[i].HostID], &rows[i], opts, quotas)
		if errors.Is(err, api.ErrHostConflict) || errors.Is(err, api.ErrQuota) {
			rows[i].refused = err
			continue
		}
		if err != nil {
			return &rowError{index: i, err: fmt.Errorf("store census report of host %s: %w", rows[i].HostID, err)}
		}
	}
	return upsertAndCommit(ctx, conn, hosts, len(rows))
}

// querier is what commit's steps run statements on: the connection that
// holds the batch's transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// lockAndRead begins the transaction, locks the hosts of rows and reads
// their stored state. The read is a statement of its own, after the lock:
// its snapshot then holds what a writer that held the lock before
// committed.
func lockAndRead(ctx context.Context, conn querier, rows []hostRow) (map[string]*pgHost, error) {
	hosts := make(map[string]*pgHost, len(rows))
	ids := make([]string, 0, len(rows))
	keys := make([]int64, 0, len(rows))
	for i := range rows {
		if _, ok := hosts[rows[i].HostID]; !ok {
			hosts[rows[i].HostID] = &pgHost{storedHost: storedHost{storedHist: "[]"}}
			ids = append(ids, rows[i].HostID)
			keys = append(keys, lockKey("host", rows[i].HostID))
		}
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockSQL, sortedKeys(keys))
	b.Queue(pgHostSQL, ids)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("lock hosts: %w", err)
	}
	res, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("read stored hosts: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var id string
		h := pgHost{storedHost: storedHost{exists: true}}
		if err := res.Scan(&id, &h.group, &h.key, &h.seq, &h.lastSeen, &h.tokens, &h.lastTime,
			&h.lastTarget, &h.storedHist, &h.firstSeen); err != nil {
			return nil, fmt.Errorf("read stored hosts: %w", err)
		}
		*hosts[id] = h
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("read stored hosts: %w", err)
	}
	res.Close()
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("read stored hosts: %w", err)
	}
	return hosts, nil
}

// lockQuotaGroups locks the groups whose quota a new host of rows may
// count against, so that two proxies admitting new hosts of one group
// count one after the other.
func lockQuotaGroups(ctx context.Context, conn querier, rows []hostRow, hosts map[string]*pgHost) error {
	var keys []int64
	for i := range rows {
		q := rows[i].id.Quota
		if (q.MaxHosts > 0 || q.NewHostsPerHour > 0) && !hosts[rows[i].HostID].exists {
			keys = append(keys, lockKey("group", rows[i].UpdateGroup))
		}
	}
	return lockKeys(ctx, conn, keys)
}

// applyRow checks r against its host's state h as SQLite's write does and,
// when admitted, makes r the host's latest report.
func applyRow(ctx context.Context, conn querier, h *pgHost, r *hostRow, opts Options, quotas *quotaCounts) error {
	if err := h.checkBinding(r); err != nil {
		return fmt.Errorf("host %s: %w", r.HostID, err)
	}
	tokens, err := h.spend(r.lastSeen, opts.ReportBurst, opts.ReportEvery)
	if err != nil {
		return fmt.Errorf("host %s: %w", r.HostID, err)
	}
	if !h.exists {
		if err := quotas.admit(ctx, conn, r); err != nil {
			return fmt.Errorf("host %s: %w", r.HostID, err)
		}
		h.firstSeen = r.lastSeen
	}
	hist, err := h.history(r, opts.HistoryPerHost)
	if err != nil {
		return err
	}
	r.tokens = tokens
	if hist != nil {
		h.storedHist = hist.(string)
	}
	h.exists, h.group, h.key = true, r.UpdateGroup, []byte(r.id.Key)
	h.seq = max(h.seq, r.id.Seq)
	h.lastSeen = r.lastSeen
	h.tokens = sql.NullFloat64{}
	if t, ok := tokens.(float64); ok {
		h.tokens = sql.NullFloat64{Float64: t, Valid: true}
	}
	h.lastTime = sql.NullInt64{Int64: r.resultTime, Valid: r.hasResult}
	h.lastTarget = r.resultTarget
	h.row = r
	return nil
}

// quotaCounts are the hosts of each group counted for the quotas: what
// the database held at the first new host of the group in this batch, plus
// the new hosts admitted since.
type quotaCounts struct {
	hosts, recent map[string]int
}

func newQuotaCounts() *quotaCounts {
	return &quotaCounts{hosts: map[string]int{}, recent: map[string]int{}}
}

// admit checks that r, the first report of a host, keeps its group within
// the quota of the token it came with, and counts it.
func (q *quotaCounts) admit(ctx context.Context, conn querier, r *hostRow) error {
	quota, g := r.id.Quota, r.UpdateGroup
	if quota.MaxHosts > 0 || quota.NewHostsPerHour > 0 {
		if _, ok := q.hosts[g]; !ok {
			var n, recent int
			since := r.lastSeen - time.Hour.Milliseconds()
			if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE first_seen > $2) FROM hosts WHERE grp = $1`,
				g, since).Scan(&n, &recent); err != nil {
				return fmt.Errorf("count the group's hosts: %w", err)
			}
			q.hosts[g], q.recent[g] = n, recent
		}
		if quota.MaxHosts > 0 && q.hosts[g] >= quota.MaxHosts {
			return api.ErrMaxHosts
		}
		if quota.NewHostsPerHour > 0 && q.recent[g] >= quota.NewHostsPerHour {
			return api.ErrNewHostsPerHour
		}
	}
	if _, ok := q.hosts[g]; ok {
		q.hosts[g]++
		q.recent[g]++
	}
	return nil
}

// pgUpsertSQL writes hosts' final states, one array element per host.
const pgUpsertSQL = `INSERT INTO hosts (` + hostColumns + `, history, host_key, seq, rate_tokens, updater_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
	$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[],
	$16::text[], $17::text[], $18::bigint[], $19::bigint[], $20::bigint[], $21::text[], $22::text[],
	$23::bytea[], $24::bigint[], $25::float8[], $26::text[])
ON CONFLICT (host_id) DO UPDATE SET grp = excluded.grp, version = excluded.version,
	services = excluded.services, os = excluded.os, os_version = excluded.os_version,
	arch = excluded.arch, glibc = excluded.glibc, install_methods = excluded.install_methods,
	container_runtime = excluded.container_runtime, container_orchestrator = excluded.container_orchestrator,
	cloud = excluded.cloud, updater_status = excluded.updater_status, last_result = excluded.last_result,
	last_update_time = excluded.last_update_time, last_update_target = excluded.last_update_target,
	last_update_error = excluded.last_update_error, reported_at = excluded.reported_at,
	first_seen = excluded.first_seen, last_seen = excluded.last_seen, dims = excluded.dims,
	history = excluded.history, host_key = excluded.host_key, seq = excluded.seq, rate_tokens = excluded.rate_tokens,
	updater_id = excluded.updater_id`

// pgColumns are the upsert's parameters, one array per column, one
// element per host; typed, so that pgx encodes them without reflection.
type pgColumns struct {
	text   [19][]string // the text columns, parameters pgTextParams
	times  [4][]*int64  // last_update_time, reported_at, first_seen, last_seen
	keys   [][]byte
	seqs   []int64
	tokens []*float64
}

// pgTextParams are the parameter numbers of pgUpsertSQL's text arrays.
var pgTextParams = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 21, 22, 26}

// upsertAndCommit writes the final state of every host of the batch that
// had a report admitted, in one statement, and commits.
func upsertAndCommit(ctx context.Context, conn querier, hosts map[string]*pgHost, reports int) error {
	var c pgColumns
	for _, h := range hosts {
		r := h.row
		if r == nil {
			continue
		}
		var resultTime *int64
		if r.hasResult {
			resultTime = &r.resultTime
		}
		var tokens *float64
		if h.tokens.Valid {
			tokens = &h.tokens.Float64
		}
		texts := []string{r.HostID, r.UpdateGroup, r.Version, r.services, r.OS, r.OSVersion, r.HostArchitecture,
			r.GlibcVersion, r.installMethods, r.ContainerRuntime, r.ContainerOrchestrator, r.CloudEnvironment,
			r.UpdaterStatus, r.lastResult, r.resultTarget, r.resultError, r.dims, h.storedHist, r.UpdaterID}
		for i, v := range texts {
			c.text[i] = append(c.text[i], v)
		}
		reported, first, last := r.ReportedAt.UnixMilli(), h.firstSeen, r.lastSeen
		for i, v := range []*int64{resultTime, &reported, &first, &last} {
			c.times[i] = append(c.times[i], v)
		}
		c.keys = append(c.keys, h.key)
		c.seqs = append(c.seqs, h.seq)
		c.tokens = append(c.tokens, tokens)
	}
	b := &pgx.Batch{}
	if len(c.seqs) > 0 {
		args := make([]any, 26)
		for i, param := range pgTextParams {
			args[param-1] = c.text[i]
		}
		args[14], args[17], args[18], args[19] = c.times[0], c.times[1], c.times[2], c.times[3]
		args[22], args[23], args[24] = c.keys, c.seqs, c.tokens
		b.Queue(pgUpsertSQL, args...)
	}
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if len(c.seqs) > 0 {
		if _, err := br.Exec(); err != nil {
			return &rowError{index: -1, err: fmt.Errorf("store census reports: upsert hosts: %w", err)}
		}
	}
	tag, err := br.Exec()
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("the transaction ended in %s", tag)
	}
	if err == nil {
		err = br.Close()
	}
	if err != nil {
		return fmt.Errorf("store census reports: commit %d reports: %w", reports, err)
	}
	return nil
}

// forgetSome deletes up to limit hosts last seen before cutoffMs in one
// statement. The last_seen condition is checked again on a host a
// concurrent report just updated, so a host that reported meanwhile stays.
func (p *pgDB) forgetSome(ctx context.Context, cutoffMs int64, limit int) (int, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM hosts WHERE last_seen < $1 AND host_id IN
		(SELECT host_id FROM hosts WHERE last_seen < $1 ORDER BY last_seen LIMIT $2)`, cutoffMs, limit)
	if err != nil {
		return 0, fmt.Errorf("forget census hosts: delete hosts: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// reenroll clears a host's key under the host's lock, so that a batch
// that read the key before cannot write it back, and reports whether the
// host exists.
func (p *pgDB) reenroll(ctx context.Context, hostID string) (bool, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.Background())
	if err := lockKeys(ctx, tx, []int64{lockKey("host", hostID)}); err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, `UPDATE hosts SET host_key = NULL WHERE host_id = $1`, hostID)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() > 0, tx.Commit(ctx)
}

// readTx begins a read-only transaction on one snapshot.
func (p *pgDB) readTx(ctx context.Context) (pgx.Tx, error) {
	return p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
}

// summary is Summary on PostgreSQL. It counts the hosts by their
// dimensions (dims_key, a hash of dims) with one GROUP BY instead of
// keeping counts in a table as SQLite does: a counts table would be one
// hot row that every proxy's every batch updates.
func (p *pgDB) summary(ctx context.Context, now time.Time, staleAfter time.Duration) (*api.Summary, error) {
	tx, err := p.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("census summary: begin read: %w", err)
	}
	defer tx.Rollback(context.Background())
	sum := api.NewSummary(now, staleAfter)
	cutoff := now.Add(-staleAfter).UnixMilli()
	// One pass counts the hosts and the stale ones per dims_key; a second
	// looks up one host's dims per key (a few dozen keys in a fleet).
	rows, err := tx.Query(ctx, `WITH c AS (SELECT dims_key, count(*) AS n, count(*) FILTER (WHERE last_seen < $1) AS stale
			FROM hosts GROUP BY dims_key)
		SELECT (SELECT dims FROM hosts h WHERE h.dims_key = c.dims_key LIMIT 1), n, stale FROM c`, cutoff)
	if err != nil {
		return nil, fmt.Errorf("census summary: count hosts: %w", err)
	}
	for rows.Next() {
		var key string
		var n, stale int
		if err := rows.Scan(&key, &n, &stale); err != nil {
			rows.Close()
			return nil, fmt.Errorf("census summary: count hosts: %w", err)
		}
		if err := addDims(sum, key, n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("census summary: %w", err)
		}
		sum.StaleHosts += stale
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("census summary: count hosts: %w", err)
	}
	capSummary(sum)
	if sum.StaleHosts == 0 {
		// The count pass found none: no second scan to list them.
		return sum, nil
	}
	stale, err := tx.Query(ctx, `SELECT host_id, grp, version, last_seen FROM hosts
		WHERE last_seen < $1 ORDER BY last_seen, host_id LIMIT $2`, cutoff, api.MaxStaleListed)
	if err != nil {
		return nil, fmt.Errorf("census summary: list stale hosts: %w", err)
	}
	defer stale.Close()
	if err := addStale(sum, stale); err != nil {
		return nil, fmt.Errorf("census summary: list stale hosts: %w", err)
	}
	return sum, nil
}

// export is Export on PostgreSQL, on one snapshot.
func (p *pgDB) export(ctx context.Context, w io.Writer, encode func(ExportedHost) any) error {
	tx, err := p.readTx(ctx)
	if err != nil {
		return fmt.Errorf("export census: begin read: %w", err)
	}
	defer tx.Rollback(context.Background())
	rows, err := tx.Query(ctx, exportSQL)
	if err != nil {
		return fmt.Errorf("export census: query hosts: %w", err)
	}
	defer rows.Close()
	return writeHosts(w, rows, encode)
}
