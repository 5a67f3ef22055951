package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// rolloutSchema adds staged rollouts: the updater id each host reports
// (canaries are recognised by it in find requests), one row per group
// for the target being rolled out, and the history of transitions.
// rollout_groups.revision counts a row's writes; every transition is an
// UPDATE guarded by the state and revision it was decided from, so that
// several proxies deciding the same transition make it once.
const rolloutSchema = `ALTER TABLE hosts ADD COLUMN updater_id TEXT NOT NULL DEFAULT '';
	CREATE TABLE rollout_groups (
		grp      TEXT PRIMARY KEY,
		target   TEXT NOT NULL,    -- the version this row's rollout moves to
		state    TEXT NOT NULL,
		since    INTEGER NOT NULL, -- proxy clock, unix ms
		reason   TEXT NOT NULL,
		revision INTEGER NOT NULL,
		initial  INTEGER NOT NULL, -- hosts present when the group started
		canaries TEXT NOT NULL     -- JSON array of rollout.Host
	) WITHOUT ROWID;
	CREATE TABLE rollout_history (
		id         INTEGER PRIMARY KEY,
		at         INTEGER NOT NULL, -- proxy clock, unix ms
		target     TEXT NOT NULL,
		grp        TEXT NOT NULL,
		from_state TEXT NOT NULL,
		to_state   TEXT NOT NULL,
		reason     TEXT NOT NULL,
		actor      TEXT NOT NULL
	);
	CREATE TABLE rollout_counts (
		grp     TEXT NOT NULL,
		version TEXT NOT NULL,
		target  TEXT NOT NULL, -- last_update_target
		result  TEXT NOT NULL, -- last_result
		hosts   INTEGER NOT NULL,
		PRIMARY KEY (grp, version, target, result)
	) WITHOUT ROWID;
	INSERT INTO rollout_counts (grp, version, target, result, hosts)
		SELECT grp, version, last_update_target, last_result, count(*) FROM hosts GROUP BY 1, 2, 3, 4;` + rolloutCountTriggers

// rolloutCountTriggers keep rollout_counts (hosts per group, version and
// last update) in the transaction that changes the hosts, so evaluating a
// rollout reads a few rows instead of every host. They fire only when one
// of those columns changes, not on every report.
const rolloutCountTriggers = `
	CREATE TRIGGER hosts_rollout_insert AFTER INSERT ON hosts BEGIN
		INSERT INTO rollout_counts VALUES (NEW.grp, NEW.version, NEW.last_update_target, NEW.last_result, 1)
			ON CONFLICT DO UPDATE SET hosts = hosts + 1;
	END;
	CREATE TRIGGER hosts_rollout_update AFTER UPDATE OF grp, version, last_update_target, last_result ON hosts
	WHEN OLD.grp IS NOT NEW.grp OR OLD.version IS NOT NEW.version OR OLD.last_update_target IS NOT NEW.last_update_target
		OR OLD.last_result IS NOT NEW.last_result BEGIN
		UPDATE rollout_counts SET hosts = hosts - 1
			WHERE grp = OLD.grp AND version = OLD.version AND target = OLD.last_update_target AND result = OLD.last_result;
		DELETE FROM rollout_counts WHERE hosts <= 0
			AND grp = OLD.grp AND version = OLD.version AND target = OLD.last_update_target AND result = OLD.last_result;
		INSERT INTO rollout_counts VALUES (NEW.grp, NEW.version, NEW.last_update_target, NEW.last_result, 1)
			ON CONFLICT DO UPDATE SET hosts = hosts + 1;
	END;
	CREATE TRIGGER hosts_rollout_delete AFTER DELETE ON hosts BEGIN
		UPDATE rollout_counts SET hosts = hosts - 1
			WHERE grp = OLD.grp AND version = OLD.version AND target = OLD.last_update_target AND result = OLD.last_result;
		DELETE FROM rollout_counts WHERE hosts <= 0
			AND grp = OLD.grp AND version = OLD.version AND target = OLD.last_update_target AND result = OLD.last_result;
	END;`

// The Store is a rollout.Store.
var _ rollout.Store = (*Store)(nil)

// RolloutGroups implements rollout.Store.
func (s *Store) RolloutGroups(ctx context.Context, target string) ([]rollout.GroupState, error) {
	if s.pg != nil {
		return s.pg.rolloutGroups(ctx, target)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT grp, state, since, reason, revision, initial, canaries
		FROM rollout_groups WHERE target = ? ORDER BY grp`, target)
	if err != nil {
		return nil, fmt.Errorf("read rollout groups: %w", err)
	}
	defer rows.Close()
	return scanGroups(rows)
}

// scanGroups reads RolloutGroups' rows.
func scanGroups(rows scanner) ([]rollout.GroupState, error) {
	var out []rollout.GroupState
	for rows.Next() {
		var g rollout.GroupState
		var since int64
		var canaries string
		if err := rows.Scan(&g.Name, &g.State, &since, &g.Reason, &g.Revision, &g.Initial, &canaries); err != nil {
			return nil, fmt.Errorf("read rollout groups: %w", err)
		}
		g.Since = time.UnixMilli(since).UTC()
		if err := json.Unmarshal([]byte(canaries), &g.Canaries); err != nil {
			return nil, fmt.Errorf("read rollout groups: group %s: canaries: %w", g.Name, err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rollout groups: %w", err)
	}
	return out, nil
}

// RolloutTransition implements rollout.Store: an INSERT (first row for
// target, replacing a row of an older target) or an UPDATE guarded by
// state and revision, and the history row, in one transaction.
func (s *Store) RolloutTransition(ctx context.Context, target string, t rollout.Transition, now time.Time) (bool, error) {
	if s.readOnly {
		return false, ErrReadOnly
	}
	canaries, err := json.Marshal(t.Canaries)
	if err != nil {
		return false, fmt.Errorf("store rollout transition: %w", err)
	}
	if t.Canaries == nil {
		canaries = []byte("[]")
	}
	if s.pg != nil {
		return s.pg.rolloutTransition(ctx, target, t, string(canaries), now)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store rollout transition: %w", err)
	}
	defer tx.Rollback()
	at := now.UnixMilli()
	var res sql.Result
	if t.Revision == 0 {
		res, err = tx.ExecContext(ctx, `INSERT INTO rollout_groups (grp, target, state, since, reason, revision, initial, canaries)
			VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)
			ON CONFLICT (grp) DO UPDATE SET target = excluded.target, state = excluded.state, since = excluded.since,
				reason = excluded.reason, revision = rollout_groups.revision + 1, initial = excluded.initial, canaries = excluded.canaries
			WHERE rollout_groups.target != excluded.target`,
			t.Group, target, string(t.To), at, t.Reason, t.Initial, string(canaries))
	} else {
		res, err = tx.ExecContext(ctx, `UPDATE rollout_groups SET state = ?1, since = ?2, reason = ?3, revision = revision + 1,
				initial = ?4, canaries = ?5
			WHERE grp = ?6 AND target = ?7 AND state = ?8 AND revision = ?9`,
			string(t.To), at, t.Reason, t.Initial, string(canaries), t.Group, target, string(t.From), t.Revision)
	}
	if err != nil {
		return false, fmt.Errorf("store rollout transition %s: %w", t, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO rollout_history (at, target, grp, from_state, to_state, reason, actor)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, at, target, t.Group, string(t.From), string(t.To), t.Reason, t.Actor); err != nil {
		return false, fmt.Errorf("store rollout transition %s: history: %w", t, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store rollout transition %s: commit: %w", t, err)
	}
	return true, nil
}

// RolloutHistory implements rollout.Store.
func (s *Store) RolloutHistory(ctx context.Context, limit int) ([]rollout.HistoryEntry, error) {
	var rows scanner
	if s.pg != nil {
		r, err := s.pg.pool.Query(ctx, `SELECT at, target, grp, from_state, to_state, reason, actor
			FROM rollout_history ORDER BY id DESC LIMIT $1`, limit)
		if err != nil {
			return nil, fmt.Errorf("read rollout history: %w", err)
		}
		defer r.Close()
		rows = r
	} else {
		r, err := s.db.QueryContext(ctx, `SELECT at, target, grp, from_state, to_state, reason, actor
			FROM rollout_history ORDER BY id DESC LIMIT ?`, limit)
		if err != nil {
			return nil, fmt.Errorf("read rollout history: %w", err)
		}
		defer r.Close()
		rows = r
	}
	var out []rollout.HistoryEntry
	for rows.Next() {
		var h rollout.HistoryEntry
		var at int64
		if err := rows.Scan(&at, &h.Target, &h.Group, &h.From, &h.To, &h.Reason, &h.Actor); err != nil {
			return nil, fmt.Errorf("read rollout history: %w", err)
		}
		h.Time = time.UnixMilli(at).UTC()
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rollout history: %w", err)
	}
	return out, nil
}

// RolloutCounts implements rollout.Store: the counts of every host, kept
// by triggers in rollout_counts, less those of the hosts not seen since
// since (found through the last_seen index; few, normally). Both cost a
// few rows, not a pass over the hosts.
func (s *Store) RolloutCounts(ctx context.Context, target string, since time.Time) (map[string]rollout.Counts, error) {
	if s.pg != nil {
		return s.pg.rolloutCounts(ctx, target, since)
	}
	out := map[string]rollout.Counts{}
	for _, q := range []struct {
		sign  int
		query string
		args  []any
	}{
		{1, `SELECT grp, sum(hosts), sum(CASE WHEN version = ?1 THEN hosts ELSE 0 END),
			sum(CASE WHEN version = ?1 OR target = ?1 THEN hosts ELSE 0 END),
			sum(CASE WHEN target = ?1 AND result = 'failure' AND version != ?1 THEN hosts ELSE 0 END)
			FROM rollout_counts GROUP BY grp`, []any{target}},
		{-1, `SELECT grp, count(*), coalesce(sum(version = ?1), 0), coalesce(sum(version = ?1 OR last_update_target = ?1), 0),
			coalesce(sum(last_update_target = ?1 AND last_result = 'failure' AND version != ?1), 0)
			FROM hosts INDEXED BY hosts_last_seen WHERE last_seen < ?2 GROUP BY grp`, []any{target, since.UnixMilli()}},
	} {
		if err := s.addCounts(ctx, out, q.sign, q.query, q.args...); err != nil {
			return nil, err
		}
	}
	for g, c := range out {
		if c.Present <= 0 {
			delete(out, g)
		}
	}
	return out, nil
}

// addCounts adds sign times the per-group counts query returns to out.
func (s *Store) addCounts(ctx context.Context, out map[string]rollout.Counts, sign int, query string, args ...any) error {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("count rollout hosts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var grp string
		var n rollout.Counts
		if err := rows.Scan(&grp, &n.Present, &n.UpToDate, &n.Tried, &n.Failed); err != nil {
			return fmt.Errorf("count rollout hosts: %w", err)
		}
		c := out[grp]
		c.Present += sign * n.Present
		c.UpToDate += sign * n.UpToDate
		c.Tried += sign * n.Tried
		c.Failed += sign * n.Failed
		out[grp] = c
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("count rollout hosts: %w", err)
	}
	return nil
}

// RolloutHosts implements rollout.Store.
func (s *Store) RolloutHosts(ctx context.Context, group string, since time.Time) ([]rollout.Host, error) {
	var rows scanner
	if s.pg != nil {
		r, err := s.pg.pool.Query(ctx, `SELECT host_id, updater_id FROM hosts
			WHERE grp = $1 AND last_seen >= $2 AND updater_id != '' ORDER BY host_id`, group, since.UnixMilli())
		if err != nil {
			return nil, fmt.Errorf("list rollout hosts of %s: %w", group, err)
		}
		defer r.Close()
		rows = r
	} else {
		r, err := s.db.QueryContext(ctx, `SELECT host_id, updater_id FROM hosts
			WHERE grp = ? AND last_seen >= ? AND updater_id != '' ORDER BY host_id`, group, since.UnixMilli())
		if err != nil {
			return nil, fmt.Errorf("list rollout hosts of %s: %w", group, err)
		}
		defer r.Close()
		rows = r
	}
	var out []rollout.Host
	for rows.Next() {
		var h rollout.Host
		if err := rows.Scan(&h.HostID, &h.UpdaterID); err != nil {
			return nil, fmt.Errorf("list rollout hosts of %s: %w", group, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rollout hosts of %s: %w", group, err)
	}
	return out, nil
}

// maxHostResults bounds RolloutHostResults (canaries are few).
const maxHostResults = 100

// RolloutHostResults implements rollout.Store; the run log and error
// message come from the newest entry of the host's update history.
func (s *Store) RolloutHostResults(ctx context.Context, hostIDs []string) ([]rollout.HostResult, error) {
	if len(hostIDs) == 0 {
		return nil, nil
	}
	if len(hostIDs) > maxHostResults {
		return nil, fmt.Errorf("read rollout host results: %d hosts, at most %d", len(hostIDs), maxHostResults)
	}
	var rows scanner
	if s.pg != nil {
		r, err := s.pg.pool.Query(ctx, `SELECT host_id, version, last_seen, last_update_target, last_result, last_update_error, history
			FROM hosts WHERE host_id = ANY($1) ORDER BY host_id`, hostIDs)
		if err != nil {
			return nil, fmt.Errorf("read rollout host results: %w", err)
		}
		defer r.Close()
		rows = r
	} else {
		args := make([]any, len(hostIDs))
		for i, id := range hostIDs {
			args[i] = id
		}
		r, err := s.db.QueryContext(ctx, `SELECT host_id, version, last_seen, last_update_target, last_result, last_update_error, history
			FROM hosts WHERE host_id IN (?`+strings.Repeat(", ?", len(hostIDs)-1)+`) ORDER BY host_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("read rollout host results: %w", err)
		}
		defer r.Close()
		rows = r
	}
	var out []rollout.HostResult
	for rows.Next() {
		var h rollout.HostResult
		var seen int64
		var history string
		if err := rows.Scan(&h.HostID, &h.Version, &seen, &h.Target, &h.Result, &h.ErrorCode, &history); err != nil {
			return nil, fmt.Errorf("read rollout host results: %w", err)
		}
		h.LastSeen = time.UnixMilli(seen).UTC()
		var entries []historyEntry
		if err := json.Unmarshal([]byte(history), &entries); err != nil {
			return nil, fmt.Errorf("read rollout host results: host %s: %w", h.HostID, errors.Join(errStoredHistory, err))
		}
		if len(entries) > 0 && entries[0].Target == h.Target {
			h.Error, h.Steps = entries[0].Error, entries[0].Steps
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rollout host results: %w", err)
	}
	return out, nil
}
