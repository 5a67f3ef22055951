package store

import (
	"context"
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
	Hosts   int            // hosts copied
	ByGroup map[string]int // hosts copied per update group
}

// copyColumns are the columns of hosts CopyToPostgres copies, every one
// of them: the bindings (key, sequence number, report bucket) and the
// history travel with the reports.
var copyColumns = []string{"host_id", "grp", "version", "services", "os", "os_version", "arch", "glibc",
	"install_methods", "container_runtime", "container_orchestrator", "cloud", "updater_status", "last_result",
	"last_update_time", "last_update_target", "last_update_error", "reported_at", "first_seen", "last_seen",
	"dims", "history", "host_key", "seq", "rate_tokens"}

// CopyToPostgres copies the census of the SQLite database at from into the
// PostgreSQL database at to (creating its schema), in one transaction, and
// checks before committing that the target holds as many hosts per group
// as the source. The source is opened read-only and must have this
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
	return copyHosts(ctx, src, dst.pg)
}

// copyHosts copies src's hosts into p in one transaction and checks the
// counts.
func copyHosts(ctx context.Context, src *Store, p *pgDB) (CopyResult, error) {
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
	if _, err := tx.Exec(ctx, `LOCK TABLE hosts IN EXCLUSIVE MODE`); err != nil {
		return CopyResult{}, fmt.Errorf("copy census: lock target: %w", err)
	}
	var existing int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM hosts`).Scan(&existing); err != nil {
		return CopyResult{}, fmt.Errorf("copy census: count target hosts: %w", err)
	}
	if existing > 0 {
		return CopyResult{}, fmt.Errorf("copy census: %w (%d); copy into an empty database", ErrTargetNotEmpty, existing)
	}
	rows, err := rtx.QueryContext(ctx, `SELECT `+strings.Join(copyColumns, ", ")+` FROM hosts`)
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy census: read source hosts: %w", err)
	}
	defer rows.Close()
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hosts"}, copyColumns, &sqliteHosts{rows: rows}); err != nil {
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
	if err := tx.Commit(ctx); err != nil {
		return CopyResult{}, fmt.Errorf("copy census: commit: %w", err)
	}
	res := CopyResult{ByGroup: got}
	for _, n := range got {
		res.Hosts += n
	}
	return res, nil
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

// sqliteHosts feeds the source's hosts rows to COPY.
type sqliteHosts struct {
	rows interface {
		Next() bool
		Scan(...any) error
		Err() error
	}
	vals []any
	err  error
}

func (h *sqliteHosts) Next() bool {
	if !h.rows.Next() {
		return false
	}
	h.vals = make([]any, len(copyColumns))
	ptrs := make([]any, len(h.vals))
	for i := range h.vals {
		ptrs[i] = &h.vals[i]
	}
	if h.err = h.rows.Scan(ptrs...); h.err != nil {
		return false
	}
	// SQLite returns a REAL column holding a whole number as an integer.
	if n, ok := h.vals[len(h.vals)-1].(int64); ok {
		h.vals[len(h.vals)-1] = float64(n)
	}
	return true
}

func (h *sqliteHosts) Values() ([]any, error) { return h.vals, h.err }

func (h *sqliteHosts) Err() error {
	if h.err != nil {
		return h.err
	}
	return h.rows.Err()
}
