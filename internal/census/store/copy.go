package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrTargetNotEmpty is returned by CopyToPostgres when the PostgreSQL
// census already holds hosts: copying into it would mix two censuses.
var ErrTargetNotEmpty = errors.New("the PostgreSQL census already holds hosts")

// CopyResult is what CopyToPostgres copied.
type CopyResult struct {
	Hosts          int            // hosts copied
	ByGroup        map[string]int // hosts copied per update group
	RolloutGroups  int            // rollout_groups rows copied (one per group with a rollout)
	RolloutHistory int            // rollout transitions copied
}

// rolloutTables are the rollout state's tables and the columns
// CopyToPostgres copies, every one of them: a group's revision travels, so
// a transition decided from the copied state applies once, and history
// ids keep their order.
var rolloutTables = []struct {
	name    string
	columns []string
}{
	{"rollout_groups", []string{"grp", "target", "state", "since", "reason", "revision", "initial", "canaries"}},
	{"rollout_history", []string{"id", "at", "target", "grp", "from_state", "to_state", "reason", "actor"}},
}

// copyColumns are the columns of hosts CopyToPostgres copies, every one
// of them: the bindings (key, sequence number, report bucket) and the
// history travel with the reports.
var copyColumns = []string{"host_id", "grp", "version", "services", "os", "os_version", "arch", "glibc",
	"install_methods", "container_runtime", "container_orchestrator", "cloud", "updater_status", "last_result",
	"last_update_time", "last_update_target", "last_update_error", "reported_at", "first_seen", "last_seen",
	"dims", "history", "host_key", "seq", "rate_tokens", "updater_id"}

// CopyToPostgres copies the census and the rollout state of the SQLite
// database at from into the PostgreSQL database at to (creating its
// schema), in one transaction, and checks before committing that the
// target holds as many hosts per group, rollout groups and rollout
// transitions as the source. The source is opened read-only and must have this
// binary's schema; a proxy may keep writing to it, but what it writes
// after the copy's snapshot is not copied (stop the proxies first).
//
// Outcomes: the counts copied; ErrTargetNotEmpty; an error from opening
// either database; or an error naming the groups whose counts differ
// (nothing is committed).
func CopyToPostgres(ctx context.Context, from, to string, opts Options) (CopyResult, error) {
	if IsPostgresURL(from) || !IsPostgresURL(to) {
		return CopyResult{}, fmt.Errorf("copy census: --from must be an SQLite file and --to a postgres:// URL")
	}
	src, err := OpenReadOnly(ctx, from, opts)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy census: %w", err)
	}
	defer src.Close()
	dst, err := OpenPostgres(ctx, to, opts)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy census: %w", err)
	}
	defer dst.Close()
	return copyCensus(ctx, src, dst.pg)
}

// copyCensus copies src's hosts and rollout state into p in one
// transaction and checks the counts.
func copyCensus(ctx context.Context, src *Store, p *pgDB) (CopyResult, error) {
	rtx, err := src.db.BeginTx(ctx, nil)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy census: read source: %w", err)
	}
	defer rtx.Rollback()
	want, err := groupCounts(func(q string) (scanner, func(), error) {
		r, err := rtx.QueryContext(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		return r, func() { r.Close() }, nil
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy census: count source hosts: %w", err)
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy census: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `LOCK TABLE hosts, rollout_groups, rollout_history IN EXCLUSIVE MODE`); err != nil {
		return CopyResult{}, fmt.Errorf("copy census: lock target: %w", err)
	}
	for _, table := range []string{"hosts", "rollout_groups", "rollout_history"} {
		var existing int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&existing); err != nil {
			return CopyResult{}, fmt.Errorf("copy census: count target %s: %w", table, err)
		}
		if existing > 0 {
			return CopyResult{}, fmt.Errorf("copy census: %w (%d rows in %s); copy into an empty database", ErrTargetNotEmpty, existing, table)
		}
	}
	rows, err := rtx.QueryContext(ctx, `SELECT `+strings.Join(copyColumns, ", ")+` FROM hosts`)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy census: read source hosts: %w", err)
	}
	defer rows.Close()
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hosts"}, copyColumns, &sqliteRows{rows: rows, n: len(copyColumns), fix: hostsFix}); err != nil {
		return CopyResult{}, fmt.Errorf("copy census: write hosts: %w", err)
	}
	got, err := groupCounts(func(q string) (scanner, func(), error) {
		r, err := tx.Query(ctx, q)
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy census: count copied hosts: %w", err)
	}
	if !maps.Equal(got, want) {
		return CopyResult{}, fmt.Errorf("copy census: the copy holds %v hosts per group, the source %v; nothing committed", got, want)
	}
	res := CopyResult{ByGroup: got}
	if res.RolloutGroups, res.RolloutHistory, err = copyRollout(ctx, rtx, tx); err != nil {
		return CopyResult{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return CopyResult{}, fmt.Errorf("copy census: commit: %w", err)
	}
	for _, n := range got {
		res.Hosts += n
	}
	return res, nil
}

// copyRollout copies the rollout tables read in rtx into tx, checks that
// each holds as many rows as in the source, and moves the history's id
// sequence past the copied ids, so the next transition's row comes after
// them. It returns the rows copied per table.
func copyRollout(ctx context.Context, rtx *sql.Tx, tx pgx.Tx) (groups, history int, err error) {
	var n [2]int
	for i, table := range rolloutTables {
		var want int
		if err := rtx.QueryRowContext(ctx, `SELECT count(*) FROM `+table.name).Scan(&want); err != nil {
			return 0, 0, fmt.Errorf("copy census: count source %s: %w", table.name, err)
		}
		rows, err := rtx.QueryContext(ctx, `SELECT `+strings.Join(table.columns, ", ")+` FROM `+table.name)
		if err != nil {
			return 0, 0, fmt.Errorf("copy census: read source %s: %w", table.name, err)
		}
		copied, err := tx.CopyFrom(ctx, pgx.Identifier{table.name}, table.columns, &sqliteRows{rows: rows, n: len(table.columns)})
		rows.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("copy census: write %s: %w", table.name, err)
		}
		var got int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table.name).Scan(&got); err != nil {
			return 0, 0, fmt.Errorf("copy census: count copied %s: %w", table.name, err)
		}
		if got != want || int(copied) != want {
			return 0, 0, fmt.Errorf("copy census: the copy holds %d rows of %s, the source %d; nothing committed", got, table.name, want)
		}
		n[i] = got
	}
	if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('rollout_history', 'id'),
		coalesce((SELECT max(id) FROM rollout_history), 0) + 1, false)`); err != nil {
		return 0, 0, fmt.Errorf("copy census: advance the rollout history ids: %w", err)
	}
	return n[0], n[1], nil
}

// sqliteRows feeds the rows of a query of n columns to COPY, each edited
// by fix when set.
type sqliteRows struct {
	rows *sql.Rows
	n    int
	fix  func([]any)
	vals []any
	err  error
}

func (r *sqliteRows) Next() bool {
	if !r.rows.Next() {
		return false
	}
	r.vals = make([]any, r.n)
	ptrs := make([]any, r.n)
	for i := range r.vals {
		ptrs[i] = &r.vals[i]
	}
	if r.err = r.rows.Scan(ptrs...); r.err != nil {
		return false
	}
	if r.fix != nil {
		r.fix(r.vals)
	}
	return true
}

func (r *sqliteRows) Values() ([]any, error) { return r.vals, r.err }

func (r *sqliteRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

// groupCounts counts hosts per group with query.
func groupCounts(query func(string) (scanner, func(), error)) (map[string]int, error) {
	rows, done, err := query(`SELECT grp, count(*) FROM hosts GROUP BY grp`)
	if err != nil {
		return nil, err
	}
	defer done()
	counts := map[string]int{}
	for rows.Next() {
		var g string
		var n int
		if err := rows.Scan(&g, &n); err != nil {
			return nil, err
		}
		counts[g] = n
	}
	return counts, rows.Err()
}

// copyTokensColumn is rate_tokens' index in copyColumns.
const copyTokensColumn = 24

// hostsFix makes the source's hosts row what COPY expects: SQLite returns
// a REAL column holding a whole number as an integer.
func hostsFix(vals []any) {
	if n, ok := vals[copyTokensColumn].(int64); ok {
		vals[copyTokensColumn] = float64(n)
	}
}
