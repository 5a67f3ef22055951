package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/gravitational/teleport-update/census"
)

// schemaVersion is the PRAGMA user_version this binary writes. Each entry
// of migrations moves the schema from version i to i+1.
const schemaVersion = 1

var migrations = []string{
	// 0 → 1: hosts (latest report per host) and update_history.
	`CREATE TABLE hosts (
		host_id                TEXT PRIMARY KEY,
		grp                    TEXT NOT NULL,
		version                TEXT NOT NULL,
		services               TEXT NOT NULL, -- JSON array
		os                     TEXT NOT NULL,
		os_version             TEXT NOT NULL,
		arch                   TEXT NOT NULL,
		glibc                  TEXT NOT NULL,
		install_methods        TEXT NOT NULL, -- JSON array
		container_runtime      TEXT NOT NULL,
		container_orchestrator TEXT NOT NULL,
		cloud                  TEXT NOT NULL,
		updater_status         TEXT NOT NULL,
		last_result            TEXT NOT NULL, -- success | failure | none
		last_update_time       INTEGER,       -- unix ms, NULL without a result
		last_update_target     TEXT NOT NULL,
		last_update_error      TEXT NOT NULL,
		reported_at            INTEGER NOT NULL, -- agent clock, unix ms
		first_seen             INTEGER NOT NULL, -- proxy clock, unix ms
		last_seen              INTEGER NOT NULL, -- proxy clock, unix ms
		dims                   TEXT NOT NULL  -- the summary dimensions, one key (see dimsKey)
	) WITHOUT ROWID;
	CREATE INDEX hosts_last_seen ON hosts(last_seen);
	-- dims_counts counts hosts per dimensions key, kept by the triggers below in
	-- the same transaction as the hosts change, so Summary reads a few rows
	-- instead of scanning every host.
	CREATE TABLE dims_counts (
		dims  TEXT PRIMARY KEY,
		hosts INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TRIGGER hosts_counted_insert AFTER INSERT ON hosts BEGIN
		INSERT INTO dims_counts (dims, hosts) VALUES (NEW.dims, 1)
			ON CONFLICT (dims) DO UPDATE SET hosts = hosts + 1;
	END;
	CREATE TRIGGER hosts_counted_update AFTER UPDATE OF dims ON hosts WHEN OLD.dims IS NOT NEW.dims BEGIN
		UPDATE dims_counts SET hosts = hosts - 1 WHERE dims = OLD.dims;
		DELETE FROM dims_counts WHERE dims = OLD.dims AND hosts <= 0;
		INSERT INTO dims_counts (dims, hosts) VALUES (NEW.dims, 1)
			ON CONFLICT (dims) DO UPDATE SET hosts = hosts + 1;
	END;
	CREATE TRIGGER hosts_counted_delete AFTER DELETE ON hosts BEGIN
		UPDATE dims_counts SET hosts = hosts - 1 WHERE dims = OLD.dims;
		DELETE FROM dims_counts WHERE dims = OLD.dims AND hosts <= 0;
	END;
	CREATE TABLE update_history (
		host_id     TEXT NOT NULL,
		time        INTEGER NOT NULL, -- agent clock, unix ms
		target      TEXT NOT NULL,
		success     INTEGER NOT NULL,
		error_code  TEXT NOT NULL,
		recorded_at INTEGER NOT NULL, -- proxy clock, unix ms
		PRIMARY KEY (host_id, time, target)
	) WITHOUT ROWID;`,
}

// migrate brings the schema to schemaVersion in one transaction.
func migrate(ctx context.Context, conn *sql.Conn) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate schema: read version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("migrate schema: database has schema version %d, newer than %d this binary knows", v, schemaVersion)
	}
	if v == schemaVersion {
		return nil
	}
	for i := v; i < schemaVersion; i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate schema from version %d: %w", i, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("migrate schema: set version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema: commit: %w", err)
	}
	return nil
}

const upsertSQL = `INSERT INTO hosts (host_id, grp, version, services, os, os_version, arch, glibc,
	install_methods, container_runtime, container_orchestrator, cloud, updater_status, last_result,
	last_update_time, last_update_target, last_update_error, reported_at, first_seen, last_seen, dims)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?19, ?20)
ON CONFLICT (host_id) DO UPDATE SET grp = excluded.grp, version = excluded.version,
	services = excluded.services, os = excluded.os, os_version = excluded.os_version,
	arch = excluded.arch, glibc = excluded.glibc, install_methods = excluded.install_methods,
	container_runtime = excluded.container_runtime, container_orchestrator = excluded.container_orchestrator,
	cloud = excluded.cloud, updater_status = excluded.updater_status, last_result = excluded.last_result,
	last_update_time = excluded.last_update_time, last_update_target = excluded.last_update_target,
	last_update_error = excluded.last_update_error, reported_at = excluded.reported_at,
	last_seen = excluded.last_seen, dims = excluded.dims`

const historySQL = `INSERT OR IGNORE INTO update_history (host_id, time, target, success, error_code, recorded_at)
VALUES (?, ?, ?, ?, ?, ?)`

// pruneSQL keeps the newest ?2 results of host ?1: it deletes what sorts
// below the ?2-th newest (time, target). With fewer results the subquery is
// NULL and nothing is deleted. Index lookups only, no temporary table.
const pruneSQL = `DELETE FROM update_history WHERE host_id = ?1 AND (time, target) <
	(SELECT time, target FROM update_history WHERE host_id = ?1 ORDER BY time DESC, target DESC LIMIT 1 OFFSET ?2 - 1)`

// hostRow is one report as stored in hosts.
type hostRow struct {
	census.Report
	services, installMethods  string // JSON arrays
	lastResult                string
	hasResult                 bool
	resultTime                int64
	resultTarget, resultError string
	resultSuccess             bool
	lastSeen                  int64
	dims                      string
}

// newHostRow flattens a validated report received at now.
func newHostRow(r census.Report, now time.Time) hostRow {
	row := hostRow{
		Report:         r,
		services:       jsonList(r.Services),
		installMethods: jsonList(r.InstallMethods),
		lastResult:     census.ResultNone,
		lastSeen:       now.UnixMilli(),
	}
	if u := r.LastUpdateResult; u != nil {
		row.hasResult = true
		row.resultTime = u.Time.UnixMilli()
		row.resultTarget = u.Target
		row.resultSuccess = u.Success
		row.resultError = u.ErrorCode
		row.lastResult = census.ResultFailure
		if u.Success {
			row.lastResult = census.ResultSuccess
		}
	}
	row.dims = dimsKey(&row)
	return row
}

// args are the upsert statement's parameters ?1 … ?20.
func (r *hostRow) args() []any {
	var resultTime any
	if r.hasResult {
		resultTime = r.resultTime
	}
	return []any{r.HostID, r.UpdateGroup, r.Version, r.services, r.OS, r.OSVersion, r.HostArchitecture,
		r.GlibcVersion, r.installMethods, r.ContainerRuntime, r.ContainerOrchestrator, r.CloudEnvironment,
		r.UpdaterStatus, r.lastResult, resultTime, r.resultTarget, r.resultError,
		r.ReportedAt.UnixMilli(), r.lastSeen, r.dims}
}

// dimensions are the fields Summary counts, in the order dims encodes them.
type dimensions struct {
	Version, Group, OS, Arch string
	InstallMethods           []string
	Runtime, Cloud, Status   string
	LastResult               string
}

// dimsKey encodes the summary dimensions of a host as one JSON array, the
// key of dims_counts. A fleet has few distinct keys, so Summary reads a
// handful of counted rows instead of one table scan per field.
func dimsKey(r *hostRow) string {
	os := r.OSVersion
	if os == "" {
		os = r.OS
	}
	methods := r.InstallMethods
	if methods == nil {
		methods = []string{}
	}
	b, err := json.Marshal([]any{r.Version, r.UpdateGroup, os, r.HostArchitecture, methods,
		r.ContainerRuntime, r.CloudEnvironment, r.UpdaterStatus, r.lastResult})
	if err != nil {
		panic(fmt.Sprintf("census store: encode dimensions: %v", err)) // strings only: cannot fail
	}
	return string(b)
}

// parseDims decodes what dimsKey encoded.
func parseDims(s string) (dimensions, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil || len(raw) != 9 {
		return dimensions{}, fmt.Errorf("decode stored dimensions %q: want a 9-element array", s)
	}
	var d dimensions
	targets := []any{&d.Version, &d.Group, &d.OS, &d.Arch, &d.InstallMethods, &d.Runtime, &d.Cloud, &d.Status, &d.LastResult}
	for i, t := range targets {
		if err := json.Unmarshal(raw[i], t); err != nil {
			return dimensions{}, fmt.Errorf("decode stored dimensions %q: element %d: %w", s, i, err)
		}
	}
	return d, nil
}

// jsonList encodes a sorted copy of list as a JSON array ("[]" for none).
func jsonList(list []string) string {
	l := slices.Clone(list)
	slices.Sort(l)
	if l == nil {
		l = []string{}
	}
	b, err := json.Marshal(l)
	if err != nil {
		panic(fmt.Sprintf("census store: encode list: %v", err)) // strings only: cannot fail
	}
	return string(b)
}
