package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// TestMigrateFromV1 opens a database written by schema version 1 (history
// in its own table) and checks every host, its history and the summary
// counts survive the move to version 2, and that new results merge into the
// migrated history.
func TestMigrateFromV1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "census.db")
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	v1 := []string{
		migrations[0],
		`PRAGMA user_version = 1`,
		// Host 0: two results, stored oldest first. Host 1: none.
		`INSERT INTO hosts (` + hostColumns + `) VALUES
			('` + hostID(0) + `', 'staging', '16.4.6', '["node"]', 'linux', 'Ubuntu 22.04', 'amd64', '2.35',
			 '["systemctl","teleport-update"]', '', '', 'aws', 'enabled', 'success', ?1, '16.4.6', '',
			 ?2, ?2, ?2, '["16.4.6","staging","Ubuntu 22.04","amd64",["systemctl","teleport-update"],"","aws","enabled","success"]'),
			('` + hostID(1) + `', 'production', '15.4.22', '[]', 'linux', 'Debian GNU/Linux 12', 'arm64', '2.36',
			 '[]', 'docker', '', '', 'pinned', 'none', NULL, '', '',
			 ?2, ?2, ?2, '["15.4.22","production","Debian GNU/Linux 12","arm64",[],"docker","","pinned","none"]')`,
		`INSERT INTO update_history (host_id, time, target, success, error_code, recorded_at) VALUES
			('` + hostID(0) + `', ?3, '16.4.5', 0, 'health_check', ?2),
			('` + hostID(0) + `', ?1, '16.4.6', 1, '', ?2)`,
	}
	for _, q := range v1 {
		if _, err := db.ExecContext(ctx, q, ms(-time.Hour), ms(0), ms(-2*time.Hour)); err != nil {
			t.Fatalf("build a version 1 database: %v\n%s", err, q)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path, Options{HistoryPerHost: 2, ReportBurst: -1})
	if err != nil {
		t.Fatalf("Open of a version 1 database: %v", err)
	}
	defer s.Close()
	var version, oldTables int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != schemaVersion {
		t.Errorf("user_version after Open = %d, %v; want %d", version, err, schemaVersion)
	}
	if err := s.db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name IN ('update_history', 'hosts_v2')`).Scan(&oldTables); err != nil || oldTables != 0 {
		t.Errorf("tables update_history/hosts_v2 left after migration: %d, %v", oldTables, err)
	}

	exported := func() map[string]ExportedHost {
		t.Helper()
		var out bytes.Buffer
		if err := s.Export(ctx, &out, FormatJSON); err != nil {
			t.Fatalf("Export: %v", err)
		}
		hosts := map[string]ExportedHost{}
		for line := range bytes.SplitSeq(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
			var h ExportedHost
			if err := json.Unmarshal(line, &h); err != nil {
				t.Fatalf("export line %s: %v", line, err)
			}
			hosts[h.HostID] = h
		}
		return hosts
	}
	targets := func(h ExportedHost) string {
		var out []string
		for _, u := range h.UpdateHistory {
			out = append(out, u.Target)
		}
		return strings.Join(out, ",")
	}
	hosts := exported()
	h0, h1 := hosts[hostID(0)], hosts[hostID(1)]
	if len(hosts) != 2 || h0.Version != "16.4.6" || h1.UpdaterStatus != api.StatusPinned || h1.ContainerRuntime != "docker" {
		t.Fatalf("migrated hosts = %+v", hosts)
	}
	if got := targets(h0); got != "16.4.6,16.4.5" {
		t.Errorf("migrated history of host 0 = %s, want 16.4.6,16.4.5 (newest first)", got)
	}
	if u := h0.UpdateHistory[1]; u.Success || u.ErrorCode != "health_check" || !u.Time.Equal(t0.Add(-2*time.Hour)) {
		t.Errorf("migrated failed result = %+v", u)
	}
	if len(h1.UpdateHistory) != 0 {
		t.Errorf("host 1 without results has history %+v", h1.UpdateHistory)
	}
	sum, err := s.Summary(ctx, t0, time.Hour)
	if err != nil || sum.TotalHosts != 2 || sum.ByCloud["aws"] != 1 || sum.ByVersion["15.4.22"] != 1 {
		t.Fatalf("Summary after migration = %+v, %v", sum, err)
	}

	// A new result joins the migrated history; the oldest falls off (2 kept).
	r := report(0, func(r *api.Report) {
		r.Version = "16.4.7"
		r.LastUpdateResult = &api.UpdateResult{Time: t0, Target: "16.4.7", Success: true}
	})
	if err := s.Ingest(ctx, "staging", r, ident(r), t0); err != nil {
		t.Fatal(err)
	}
	if got := targets(exported()[hostID(0)]); got != "16.4.7,16.4.6" {
		t.Errorf("history after a new result = %s, want 16.4.7,16.4.6", got)
	}
	if sum, err := s.Summary(ctx, t0, time.Hour); err != nil || sum.TotalHosts != 2 || sum.ByVersion["16.4.7"] != 1 || sum.ByVersion["16.4.6"] != 0 {
		t.Errorf("Summary after a new report = %+v, %v", sum, err)
	}
}
