package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// Summary counts the hosts by each summary field from their latest reports
// and lists the hosts not seen since now - staleAfter (up to
// api.MaxStaleListed, longest silent first). staleAfter must be positive.
//
// It reads one snapshot of the database, so the counts agree with each
// other even while reports are being ingested.
func (s *Store) Summary(ctx context.Context, now time.Time, staleAfter time.Duration) (*api.Summary, error) {
	if staleAfter <= 0 {
		return nil, fmt.Errorf("census summary: stale-after must be positive, got %v", staleAfter)
	}
	if s.pg != nil {
		return s.pg.summary(ctx, now, staleAfter)
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("census summary: begin read: %w", err)
	}
	defer tx.Rollback()

	sum := api.NewSummary(now, staleAfter)
	rows, err := tx.QueryContext(ctx, `SELECT dims, hosts FROM dims_counts WHERE hosts > 0`)
	if err != nil {
		return nil, fmt.Errorf("census summary: count hosts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			return nil, fmt.Errorf("census summary: count hosts: %w", err)
		}
		if err := addDims(sum, key, n); err != nil {
			return nil, fmt.Errorf("census summary: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("census summary: count hosts: %w", err)
	}
	rows.Close()
	capSummary(sum)

	cutoff := now.Add(-staleAfter).UnixMilli()
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM hosts WHERE last_seen < ?`, cutoff).Scan(&sum.StaleHosts); err != nil {
		return nil, fmt.Errorf("census summary: count stale hosts: %w", err)
	}
	stale, err := tx.QueryContext(ctx, `SELECT host_id, grp, version, last_seen FROM hosts
		WHERE last_seen < ? ORDER BY last_seen, host_id LIMIT ?`, cutoff, api.MaxStaleListed)
	if err != nil {
		return nil, fmt.Errorf("census summary: list stale hosts: %w", err)
	}
	defer stale.Close()
	if err := addStale(sum, stale); err != nil {
		return nil, fmt.Errorf("census summary: list stale hosts: %w", err)
	}
	return sum, nil
}

// scanner is a query's result rows, of database/sql or of pgx.
type scanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// addStale lists the stale hosts of rows (host_id, grp, version,
// last_seen) in sum.
func addStale(sum *api.Summary, rows scanner) error {
	for rows.Next() {
		var h api.StaleHost
		var seen int64
		if err := rows.Scan(&h.HostID, &h.Group, &h.Version, &seen); err != nil {
			return err
		}
		h.LastSeen = time.UnixMilli(seen).UTC()
		sum.Stale = append(sum.Stale, h)
	}
	return rows.Err()
}

// addDims counts n hosts of the dimensions key in sum.
func addDims(sum *api.Summary, key string, n int) error {
	d, err := parseDims(key)
	if err != nil {
		return err
	}
	sum.TotalHosts += n
	sum.ByVersion[orDefault(d.Version, api.SummaryUnknown)] += n
	sum.ByGroup[orDefault(d.Group, api.SummaryUnknown)] += n
	sum.ByOS[orDefault(d.OS, api.SummaryUnknown)] += n
	sum.ByArchitecture[orDefault(d.Arch, api.SummaryUnknown)] += n
	if len(d.InstallMethods) == 0 {
		sum.ByInstallMethod[api.SummaryNone] += n
	}
	for _, m := range d.InstallMethods {
		sum.ByInstallMethod[m] += n
	}
	sum.ByContainerRuntime[orDefault(d.Runtime, api.SummaryNone)] += n
	sum.ByCloud[orDefault(d.Cloud, api.SummaryNone)] += n
	sum.ByUpdaterStatus[orDefault(d.Status, api.SummaryUnknown)] += n
	sum.ByLastUpdateResult[orDefault(d.LastResult, api.ResultNone)] += n
	g := sum.Group(orDefault(d.Group, api.SummaryUnknown))
	g.Hosts += n
	g.ByVersion[orDefault(d.Version, api.SummaryUnknown)] += n
	g.ByLastUpdateResult[orDefault(d.LastResult, api.ResultNone)] += n
	return nil
}

// capSummary bounds every count map of sum to api.MaxSummaryValues keys.
func capSummary(sum *api.Summary) {
	for _, m := range []map[string]int{sum.ByVersion, sum.ByGroup, sum.ByOS, sum.ByArchitecture,
		sum.ByInstallMethod, sum.ByContainerRuntime, sum.ByCloud, sum.ByUpdaterStatus, sum.ByLastUpdateResult} {
		capCounts(m, api.MaxSummaryValues)
	}
	groups := slices.Collect(maps.Keys(sum.Groups))
	if len(groups) > api.MaxSummaryValues {
		sizes := make(map[string]int, len(groups))
		for name, g := range sum.Groups {
			sizes[name] = g.Hosts
		}
		keep := topKeys(sizes, api.MaxSummaryValues-1)
		other := sum.Group(api.SummaryOther)
		for name, g := range sum.Groups {
			if name == api.SummaryOther || slices.Contains(keep, name) {
				continue
			}
			other.Hosts += g.Hosts
			for k, n := range g.ByVersion {
				other.ByVersion[k] += n
			}
			for k, n := range g.ByLastUpdateResult {
				other.ByLastUpdateResult[k] += n
			}
			delete(sum.Groups, name)
		}
	}
	for _, g := range sum.Groups {
		capCounts(g.ByVersion, api.MaxSummaryValues)
	}
}

// capCounts folds all but the limit-1 largest counts of m into
// api.SummaryOther when m has more than limit keys.
func capCounts(m map[string]int, limit int) {
	if len(m) <= limit {
		return
	}
	keep := topKeys(m, limit-1)
	other := 0
	for k, n := range m {
		if !slices.Contains(keep, k) {
			other += n
			delete(m, k)
		}
	}
	m[api.SummaryOther] += other
}

// topKeys returns the n keys of m with the largest counts (ties by key).
func topKeys(m map[string]int, n int) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return keys[:min(n, len(keys))]
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
