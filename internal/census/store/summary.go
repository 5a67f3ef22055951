package store

import (
	"context"
	"database/sql"
	"fmt"
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
		d, err := parseDims(key)
		if err != nil {
			return nil, fmt.Errorf("census summary: %w", err)
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
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("census summary: count hosts: %w", err)
	}
	rows.Close()

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
	for stale.Next() {
		var h api.StaleHost
		var seen int64
		if err := stale.Scan(&h.HostID, &h.Group, &h.Version, &seen); err != nil {
			return nil, fmt.Errorf("census summary: list stale hosts: %w", err)
		}
		h.LastSeen = time.UnixMilli(seen).UTC()
		sum.Stale = append(sum.Stale, h)
	}
	if err := stale.Err(); err != nil {
		return nil, fmt.Errorf("census summary: list stale hosts: %w", err)
	}
	return sum, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
