package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// rolloutGroups is RolloutGroups on PostgreSQL.
func (p *pgDB) rolloutGroups(ctx context.Context, target string) ([]rollout.GroupState, error) {
	rows, err := p.pool.Query(ctx, `SELECT grp, state, since, reason, revision, initial, canaries
		FROM rollout_groups WHERE target = $1 ORDER BY grp`, target)
	if err != nil {
		return nil, fmt.Errorf("read rollout groups: %w", err)
	}
	defer rows.Close()
	return scanGroups(rows)
}

// rolloutTransition is RolloutTransition on PostgreSQL. Like SQLite's it is
// a guarded write: an UPDATE that applies only while the group's row is
// in the state and at the revision the transition was decided from (an
// INSERT that applies only when the group has no row for target), and the
// history row, in one transaction. When two proxies decide the same
// transition, PostgreSQL's row lock makes the second UPDATE wait for the
// first to commit and then re-check its WHERE on the new row: the revision
// has moved, so it changes nothing and the second proxy learns it lost.
// No advisory lock or SELECT … FOR UPDATE is needed, and a proxy that
// dies mid-transition leaves nothing locked.
func (p *pgDB) rolloutTransition(ctx context.Context, target string, t rollout.Transition, canaries string, now time.Time) (bool, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("store rollout transition: %w", err)
	}
	defer tx.Rollback(context.Background())
	at := now.UnixMilli()
	var tag pgconn.CommandTag
	if t.Revision == 0 {
		tag, err = tx.Exec(ctx, `INSERT INTO rollout_groups (grp, target, state, since, reason, revision, initial, canaries)
			VALUES ($1, $2, $3, $4, $5, 1, $6, $7)
			ON CONFLICT (grp) DO UPDATE SET target = excluded.target, state = excluded.state, since = excluded.since,
				reason = excluded.reason, revision = rollout_groups.revision + 1, initial = excluded.initial, canaries = excluded.canaries
			WHERE rollout_groups.target != excluded.target`,
			t.Group, target, string(t.To), at, t.Reason, t.Initial, canaries)
	} else {
		tag, err = tx.Exec(ctx, `UPDATE rollout_groups SET state = $1, since = $2, reason = $3, revision = revision + 1,
				initial = $4, canaries = $5
			WHERE grp = $6 AND target = $7 AND state = $8 AND revision = $9`,
			string(t.To), at, t.Reason, t.Initial, canaries, t.Group, target, string(t.From), t.Revision)
	}
	if err != nil {
		return false, fmt.Errorf("store rollout transition %s: %w", t, err)
	}
	if tag.RowsAffected() != 1 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rollout_history (at, target, grp, from_state, to_state, reason, actor)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, at, target, t.Group, string(t.From), string(t.To), t.Reason, t.Actor); err != nil {
		return false, fmt.Errorf("store rollout transition %s: history: %w", t, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("store rollout transition %s: commit: %w", t, err)
	}
	return true, nil
}

// rolloutCounts is RolloutCounts on PostgreSQL: one pass over the hosts
// seen since since.
func (p *pgDB) rolloutCounts(ctx context.Context, target string, since time.Time) (map[string]rollout.Counts, error) {
	rows, err := p.pool.Query(ctx, `SELECT grp, count(*),
			count(*) FILTER (WHERE version = $1),
			count(*) FILTER (WHERE version = $1 OR last_update_target = $1),
			count(*) FILTER (WHERE last_update_target = $1 AND last_result = 'failure' AND version != $1)
		FROM hosts WHERE last_seen >= $2 GROUP BY grp`, target, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("count rollout hosts: %w", err)
	}
	defer rows.Close()
	out := map[string]rollout.Counts{}
	for rows.Next() {
		var grp string
		var c rollout.Counts
		if err := rows.Scan(&grp, &c.Present, &c.UpToDate, &c.Tried, &c.Failed); err != nil {
			return nil, fmt.Errorf("count rollout hosts: %w", err)
		}
		out[grp] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count rollout hosts: %w", err)
	}
	return out, nil
}
