package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// schemaVersion is the PRAGMA user_version this binary writes. Each entry
// of migrations moves the schema from version i to i+1.
const schemaVersion = 4

// hostColumns are the columns a report fills, in the order of upsertSQL's
// parameters; migration 1 → 2 copies them as they are.
const hostColumns = `host_id, grp, version, services, os, os_version, arch, glibc,
	install_methods, container_runtime, container_orchestrator, cloud, updater_status, last_result,
	last_update_time, last_update_target, last_update_error, reported_at, first_seen, last_seen, dims`

// countTriggers keep dims_counts (hosts per dimensions key) in the same
// transaction as the hosts change, so Summary reads a few rows instead of
// scanning every host.
const countTriggers = `
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
	END;`

var migrations = []string{
	// 0 → 1: hosts (latest report per host, keyed by host_id) and
	// update_history (one row per result, keyed by host_id).
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
	CREATE TABLE dims_counts (
		dims  TEXT PRIMARY KEY,
		hosts INTEGER NOT NULL
	) WITHOUT ROWID;` + countTriggers + `
	CREATE TABLE update_history (
		host_id     TEXT NOT NULL,
		time        INTEGER NOT NULL, -- agent clock, unix ms
		target      TEXT NOT NULL,
		success     INTEGER NOT NULL,
		error_code  TEXT NOT NULL,
		recorded_at INTEGER NOT NULL, -- proxy clock, unix ms
		PRIMARY KEY (host_id, time, target)
	) WITHOUT ROWID;`,

	// 1 → 2: hosts becomes a rowid table, so a new host is appended instead
	// of splitting a random leaf of a table keyed by a random hash, and the
	// update history moves into the host's row (a JSON array, see
	// historyEntry), so a report writes one row, not a row plus a history
	// row on another random page. Both halve the pages each report dirties.
	`DROP TRIGGER hosts_counted_insert;
	DROP TRIGGER hosts_counted_update;
	DROP TRIGGER hosts_counted_delete;
	CREATE TABLE hosts_v2 (
		id                     INTEGER PRIMARY KEY,
		host_id                TEXT NOT NULL UNIQUE,
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
		dims                   TEXT NOT NULL, -- the summary dimensions, one key (see dimsKey)
		history                TEXT NOT NULL  -- JSON array of historyEntry, newest first
	);
	INSERT INTO hosts_v2 (` + hostColumns + `, history)
		SELECT ` + hostColumns + `,
			(SELECT json_group_array(json_object('t', time, 'target', target, 's', success, 'e', error_code))
				FROM (SELECT * FROM update_history h WHERE h.host_id = hosts.host_id ORDER BY time DESC, target DESC))
		FROM hosts ORDER BY first_seen, host_id;
	DROP TABLE update_history;
	DROP TABLE hosts;
	ALTER TABLE hosts_v2 RENAME TO hosts;
	CREATE INDEX hosts_last_seen ON hosts(last_seen);` + countTriggers,

	// 2 → 3: signed reports. host_key is the Ed25519 public key the host's
	// first signed report bound (NULL until then, or after an admin
	// re-enrolled the host); seq is the largest sequence number stored.
	// hosts_group_first_seen counts a group's hosts, and those it gained in
	// the last hour, for the tokens' quotas.
	`ALTER TABLE hosts ADD COLUMN host_key BLOB;
	ALTER TABLE hosts ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE hosts ADD COLUMN rate_tokens REAL; -- the host's report bucket; NULL: full
	CREATE INDEX hosts_group_first_seen ON hosts(grp, first_seen);`,
	// 3 → 4: staged rollouts (rollout.go).
	rolloutSchema,
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
		return fmt.Errorf("migrate schema: %w: version %d, this binary knows up to %d", ErrNewerSchema, v, schemaVersion)
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

// upsertSQL stores a report as its host's latest. ?21 is the host's new
// update history (a JSON array), or NULL to keep the stored one; ?22 and
// ?23 are the key and sequence number of the report's signature, ?24 what
// is left of the host's report bucket, ?25 the updater id it sent.
const upsertSQL = `INSERT INTO hosts (` + hostColumns + `, history, host_key, seq, rate_tokens, updater_id)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?19, ?20, coalesce(?21, '[]'), ?22, ?23, ?24, ?25)
ON CONFLICT (host_id) DO UPDATE SET grp = excluded.grp, version = excluded.version,
	services = excluded.services, os = excluded.os, os_version = excluded.os_version,
	arch = excluded.arch, glibc = excluded.glibc, install_methods = excluded.install_methods,
	container_runtime = excluded.container_runtime, container_orchestrator = excluded.container_orchestrator,
	cloud = excluded.cloud, updater_status = excluded.updater_status, last_result = excluded.last_result,
	last_update_time = excluded.last_update_time, last_update_target = excluded.last_update_target,
	last_update_error = excluded.last_update_error, reported_at = excluded.reported_at,
	last_seen = excluded.last_seen, dims = excluded.dims, history = coalesce(?21, history),
	host_key = excluded.host_key, seq = max(seq, excluded.seq), rate_tokens = excluded.rate_tokens,
	updater_id = excluded.updater_id`

// lookupSQL reads what the writer needs to check a report against its
// host's binding and to merge its update result into the host's history.
const lookupSQL = `SELECT grp, host_key, seq, last_seen, rate_tokens, last_update_time, last_update_target, history FROM hosts WHERE host_id = ?`

// hostRow is one report as stored in hosts.
type hostRow struct {
	api.Report
	id                        api.Identity
	refused                   error  // set by commit when the row conflicts with its host's binding
	tokens                    any    // what is left of the host's report bucket (see storedHost.spend)
	services, installMethods  string // JSON arrays
	lastResult                string
	hasResult                 bool
	resultTime                int64
	resultTarget, resultError string
	resultSuccess             bool
	lastSeen                  int64
	dims                      string
}

// newHostRow flattens a validated report signed by id, received at now.
func newHostRow(r api.Report, id api.Identity, now time.Time) hostRow {
	row := hostRow{
		Report:         r,
		id:             id,
		services:       jsonList(r.Services),
		installMethods: jsonList(r.InstallMethods),
		lastResult:     api.ResultNone,
		lastSeen:       now.UnixMilli(),
	}
	if u := r.LastUpdateResult; u != nil {
		row.hasResult = true
		row.resultTime = u.Time.UnixMilli()
		row.resultTarget = u.Target
		row.resultSuccess = u.Success
		row.resultError = u.ErrorCode
		row.lastResult = api.ResultFailure
		if u.Success {
			row.lastResult = api.ResultSuccess
		}
	}
	row.dims = dimsKey(&row)
	return row
}

// args are the upsert statement's parameters ?1 … ?25; history is the
// host's new update history, or nil to keep the stored one.
func (r *hostRow) args(history any) []any {
	var resultTime any
	if r.hasResult {
		resultTime = r.resultTime
	}
	return []any{r.HostID, r.UpdateGroup, r.Version, r.services, r.OS, r.OSVersion, r.HostArchitecture,
		r.GlibcVersion, r.installMethods, r.ContainerRuntime, r.ContainerOrchestrator, r.CloudEnvironment,
		r.UpdaterStatus, r.lastResult, resultTime, r.resultTarget, r.resultError,
		r.ReportedAt.UnixMilli(), r.lastSeen, r.dims, history, []byte(r.id.Key), r.id.Seq, r.tokens, r.UpdaterID}
}

// historyEntry is one update result in a host's history column.
type historyEntry struct {
	Time    int64  `json:"t"` // agent clock, unix ms
	Target  string `json:"target"`
	Success int    `json:"s"` // 1 or 0
	Code    string `json:"e"`
	// Error and Steps are the failure's message and the run log, when
	// the report carried them.
	Error string        `json:"m,omitempty"`
	Steps []api.RunStep `json:"st,omitempty"`
}

// entry is the row's update result as a history entry.
func (r *hostRow) entry() historyEntry {
	e := historyEntry{Time: r.resultTime, Target: r.resultTarget, Code: r.resultError}
	if u := r.LastUpdateResult; u != nil {
		e.Error, e.Steps = u.Error, u.Steps
	}
	if r.resultSuccess {
		e.Success = 1
	}
	return e
}

// mergeHistory adds e to the stored history (a JSON array of historyEntry,
// newest first) and keeps the newest keep entries, ordered by time then
// target, both descending. One entry is kept per (time, target): when e's is
// already there, the stored entry stays (a repeated report is not news).
func mergeHistory(stored string, e historyEntry, keep int) (string, error) {
	var h []historyEntry
	if err := json.Unmarshal([]byte(stored), &h); err != nil {
		return "", fmt.Errorf("%w: %v", errStoredHistory, err)
	}
	if !slices.ContainsFunc(h, func(o historyEntry) bool { return o.Time == e.Time && o.Target == e.Target }) {
		h = append(h, e)
	}
	slices.SortStableFunc(h, func(a, b historyEntry) int {
		if c := cmp.Compare(b.Time, a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Target, a.Target)
	})
	h = h[:min(len(h), keep)]
	b, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("encode update history: %w", err) // plain fields: cannot fail
	}
	return string(b), nil
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
