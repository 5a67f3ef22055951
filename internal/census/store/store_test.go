package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/pgtest"
)

// censusBackend is the interface proxyapi declares; *Store must satisfy it.
type censusBackend interface {
	Ingest(ctx context.Context, group string, r api.Report, id api.Identity, now time.Time) error
	Summary(ctx context.Context, now time.Time, staleAfter time.Duration) (*api.Summary, error)
}

var _ censusBackend = (*Store)(nil)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// hostID returns a valid host id for host n.
func hostID(n int) string { return fmt.Sprintf("%064x", n+1) }

// report returns a valid report of host n; edit tweaks it.
func report(n int, edit func(*api.Report)) api.Report {
	r := api.Report{
		HostID:           hostID(n),
		Version:          "16.4.6",
		Services:         []string{"node"},
		OS:               "linux",
		OSVersion:        "Ubuntu 22.04",
		HostArchitecture: "amd64",
		GlibcVersion:     "2.35",
		InstallMethods:   []string{"systemctl", "teleport-update"},
		UpdateGroup:      "staging",
		UpdaterStatus:    api.StatusEnabled,
		ReportedAt:       t0,
	}
	if edit != nil {
		edit(&r)
	}
	return r
}

func body(t testing.TB, r api.Report) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newDB returns the name of a new, empty census database of one backend:
// an SQLite file, or a PostgreSQL URL.
type newDB func(t testing.TB) string

// sqliteDB is a new SQLite database file.
func sqliteDB(t testing.TB) string { return filepath.Join(t.TempDir(), "census.db") }

// forBackends runs test, in parallel subtests, once on each backend: the
// same behaviour is expected of both.
func forBackends(t *testing.T, test func(t *testing.T, db newDB)) {
	t.Helper()
	for _, b := range []struct {
		name string
		db   newDB
	}{{"sqlite", sqliteDB}, {"postgres", pgtest.Database}} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.db)
		})
	}
}

func openStore(t testing.TB, db newDB, opts Options) (*Store, string) {
	t.Helper()
	if opts.ReportBurst == 0 {
		// Most tests send a host's reports at one instant.
		opts.ReportBurst = -1
	}
	path := db(t)
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{})
		ingest := func(group string, r api.Report, now time.Time) {
			t.Helper()
			if err := s.Ingest(ctx, group, r, ident(r), now); err != nil {
				t.Fatalf("Ingest host %s: %v", r.HostID, err)
			}
		}
		// Host 0: reports twice; the second report replaces the first.
		ingest("staging", report(0, func(r *api.Report) { r.Version = "16.4.5" }), t0)
		ingest("staging", report(0, func(r *api.Report) {
			r.LastUpdateResult = &api.UpdateResult{Time: t0, Target: "16.4.6", Success: true}
		}), t0.Add(time.Hour))
		// Host 1: claims "staging" but its token says "production"; docker on aws; failed update.
		ingest("production", report(1, func(r *api.Report) {
			r.ContainerRuntime = api.RuntimeDocker
			r.CloudEnvironment = api.CloudAWS
			r.InstallMethods = []string{"dockerfile", "teleport-update"}
			r.HostArchitecture = "arm64"
			r.LastUpdateResult = &api.UpdateResult{Time: t0, Target: "16.4.7", ErrorCode: "health_check"}
		}), t0.Add(time.Hour))
		// Host 2: last seen long ago, pinned, nothing optional.
		ingest("production", report(2, func(r *api.Report) {
			r.Version = ""
			r.OSVersion = ""
			r.InstallMethods = nil
			r.Services = nil
			r.UpdaterStatus = api.StatusPinned
		}), t0.Add(-48*time.Hour))

		now := t0.Add(2 * time.Hour)
		sum, err := s.Summary(ctx, now, 24*time.Hour)
		if err != nil {
			t.Fatalf("Summary: %v", err)
		}
		want := api.NewSummary(now, 24*time.Hour)
		want.TotalHosts = 3
		want.ByVersion = map[string]int{"16.4.6": 2, "unknown": 1}
		want.ByGroup = map[string]int{"staging": 1, "production": 2}
		want.ByOS = map[string]int{"Ubuntu 22.04": 2, "linux": 1}
		want.ByArchitecture = map[string]int{"amd64": 2, "arm64": 1}
		want.ByInstallMethod = map[string]int{"systemctl": 1, "teleport-update": 2, "dockerfile": 1, "none": 1}
		want.ByContainerRuntime = map[string]int{"none": 2, "docker": 1}
		want.ByCloud = map[string]int{"none": 2, "aws": 1}
		want.ByUpdaterStatus = map[string]int{"enabled": 2, "pinned": 1}
		want.ByLastUpdateResult = map[string]int{"success": 1, "failure": 1, "none": 1}
		want.Groups = map[string]*api.GroupSummary{
			"staging":    {Hosts: 1, ByVersion: map[string]int{"16.4.6": 1}, ByLastUpdateResult: map[string]int{"success": 1}},
			"production": {Hosts: 2, ByVersion: map[string]int{"16.4.6": 1, "unknown": 1}, ByLastUpdateResult: map[string]int{"failure": 1, "none": 1}},
		}
		want.StaleHosts = 1
		want.Stale = []api.StaleHost{{HostID: hostID(2), Group: "production", LastSeen: t0.Add(-48 * time.Hour)}}
		got, _ := json.MarshalIndent(sum, "", " ")
		exp, _ := json.MarshalIndent(want, "", " ")
		if !bytes.Equal(got, exp) {
			t.Errorf("Summary:\n%s\nwant:\n%s", got, exp)
		}

		// Export gives back exactly what was stored, with the token's group.
		var out bytes.Buffer
		if err := s.Export(ctx, &out, FormatJSON); err != nil {
			t.Fatalf("Export: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("Export wrote %d lines, want 3:\n%s", len(lines), out.String())
		}
		var h1 ExportedHost
		if err := json.Unmarshal([]byte(lines[1]), &h1); err != nil {
			t.Fatal(err)
		}
		w1 := report(1, func(r *api.Report) {
			r.UpdateGroup = "production"
			r.ContainerRuntime = api.RuntimeDocker
			r.CloudEnvironment = api.CloudAWS
			r.InstallMethods = []string{"dockerfile", "teleport-update"}
			r.HostArchitecture = "arm64"
			r.LastUpdateResult = &api.UpdateResult{Time: t0, Target: "16.4.7", ErrorCode: "health_check"}
		})
		if g, w := string(body(t, h1.Report)), string(body(t, w1)); g != w {
			t.Errorf("exported host 1:\n%s\nwant:\n%s", g, w)
		}
		if !h1.LastSeen.Equal(t0.Add(time.Hour)) || !h1.FirstSeen.Equal(t0.Add(time.Hour)) {
			t.Errorf("host 1 seen %v..%v, want %v", h1.FirstSeen, h1.LastSeen, t0.Add(time.Hour))
		}
		var h0 ExportedHost
		if err := json.Unmarshal([]byte(lines[0]), &h0); err != nil {
			t.Fatal(err)
		}
		if !h0.FirstSeen.Equal(t0) || !h0.LastSeen.Equal(t0.Add(time.Hour)) || h0.Version != "16.4.6" {
			t.Errorf("host 0 = %+v, want first seen %v, last seen %v, version 16.4.6", h0, t0, t0.Add(time.Hour))
		}
	})
}

// TestInvalidReportsNotStored: the store checks the reports it is given
// again, whoever decoded them (bodies are decoded by the proxy's handler,
// see api.DecodeReport and its tests), and refuses one without a host id.
func TestInvalidReportsNotStored(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{})
		valid := report(0, nil)
		tests := []struct {
			name   string
			group  string
			report api.Report
			want   error
		}{
			{"no host id", "staging", report(0, func(r *api.Report) { r.HostID = "" }), api.ErrInvalidReport},
			{"bad enum", "staging", report(0, func(r *api.Report) { r.CloudEnvironment = "digitalocean" }), api.ErrInvalidReport},
			{"version with v", "staging", report(0, func(r *api.Report) { r.Version = "v16.4.6" }), api.ErrInvalidReport},
			{"long field", "staging", report(0, func(r *api.Report) { r.OSVersion = strings.Repeat("x", api.MaxFieldLen+1) }), api.ErrInvalidReport},
			{"no status", "staging", report(0, func(r *api.Report) { r.UpdaterStatus = "" }), api.ErrInvalidReport},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.Ingest(ctx, tt.group, tt.report, ident(tt.report), t0)
				if !errors.Is(err, tt.want) {
					t.Fatalf("Ingest = %v, want %v", err, tt.want)
				}
				err = s.IngestOneTx(ctx, tt.group, tt.report, ident(tt.report), t0)
				if !errors.Is(err, tt.want) {
					t.Fatalf("IngestOneTx = %v, want %v", err, tt.want)
				}
			})
		}
		if err := s.Ingest(ctx, "", valid, ident(valid), t0); err == nil {
			t.Errorf("Ingest with an empty group succeeded")
		}
		sum, err := s.Summary(ctx, t0, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if sum.TotalHosts != 0 {
			t.Errorf("after refused reports the store holds %d hosts, want 0", sum.TotalHosts)
		}
	})
}

// history returns the targets of host n's stored update results, in the
// stored order (newest first).
func history(t *testing.T, s *Store, n int) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Export(context.Background(), &buf, FormatJSON); err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range bytes.Lines(buf.Bytes()) {
		var h ExportedHost
		if err := json.Unmarshal(line, &h); err != nil {
			t.Fatal(err)
		}
		if h.HostID != hostID(n) {
			continue
		}
		for _, u := range h.UpdateHistory {
			out = append(out, u.Target)
		}
	}
	return out
}

func TestHistoryBounded(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{HistoryPerHost: 3})
		for i := range 6 {
			r := report(0, func(r *api.Report) {
				r.LastUpdateResult = &api.UpdateResult{Time: t0.Add(time.Duration(i) * time.Hour), Target: fmt.Sprintf("16.4.%d", i), Success: true}
			})
			// Every run reports; a repeated result must not add a history entry.
			for range 2 {
				if err := s.Ingest(ctx, "staging", r, ident(r), t0); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Another host's history is separate.
		r := report(1, func(r *api.Report) {
			r.LastUpdateResult = &api.UpdateResult{Time: t0, Target: "15.0.0", Success: true}
		})
		if err := s.IngestOneTx(ctx, "staging", r, ident(r), t0); err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(history(t, s, 0), ","), "16.4.5,16.4.4,16.4.3"; got != want {
			t.Errorf("history of host 0 = %s, want %s", got, want)
		}
		if got, want := strings.Join(history(t, s, 1), ","), "15.0.0"; got != want {
			t.Errorf("history of host 1 = %s, want %s", got, want)
		}

		// Host 0, in order: a report without a result keeps the history; an
		// older result already kept is not added twice; a result that sorts
		// between kept ones is placed by time; one older than all kept falls off.
		steps := []struct {
			result *api.UpdateResult
			want   string
		}{
			{nil, "16.4.5,16.4.4,16.4.3"},
			{&api.UpdateResult{Time: t0.Add(4 * time.Hour), Target: "16.4.4", Success: true}, "16.4.5,16.4.4,16.4.3"},
			{&api.UpdateResult{Time: t0.Add(4*time.Hour + time.Minute), Target: "16.4.4-hotfix"}, "16.4.5,16.4.4-hotfix,16.4.4"},
			{&api.UpdateResult{Time: t0.Add(-time.Hour), Target: "15.9.9"}, "16.4.5,16.4.4-hotfix,16.4.4"},
		}
		for _, step := range steps {
			r := report(0, func(r *api.Report) { r.LastUpdateResult = step.result })
			if err := s.Ingest(ctx, "staging", r, ident(r), t0); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(history(t, s, 0), ","); got != step.want {
				t.Errorf("after result %+v: history of host 0 = %s, want %s", step.result, got, step.want)
			}
		}
	})
}

func TestConcurrentIngestDurable(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		path := db(t)
		s, err := Open(ctx, path, Options{BatchSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		const hosts = 200
		var wg sync.WaitGroup
		errs := make(chan error, hosts)
		for i := range hosts {
			wg.Go(func() {
				ingest := s.Ingest
				if i%5 == 0 {
					ingest = s.IngestOneTx
				}
				errs <- ingest(ctx, "staging", report(i, nil), ident(report(i, nil)), t0)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Ingest: %v", err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Ingest(ctx, "staging", report(0, nil), ident(report(0, nil)), t0); !errors.Is(err, ErrClosed) {
			t.Errorf("Ingest after Close = %v, want ErrClosed", err)
		}
		// Reopen: everything acknowledged is there.
		s2, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		sum, err := s2.Summary(ctx, t0, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if sum.TotalHosts != hosts {
			t.Errorf("after reopen TotalHosts = %d, want %d", sum.TotalHosts, hosts)
		}
		if s2.pg != nil {
			return
		}
		var sync int
		if err := s2.db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if sync != 2 {
			t.Errorf("PRAGMA synchronous = %d, want 2 (FULL)", sync)
		}
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, path := openStore(t, sqliteDB, Options{})
	if _, err := s.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema = %v, want a schema version error", err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "a?b"), Options{}); err == nil {
		t.Errorf("Open of a path with '?' succeeded")
	}
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, garbage, Options{}); err == nil {
		s.Close()
		t.Errorf("Open of a file that is not a database succeeded")
	}
}

func TestSummaryStaleListBounded(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{})
		if _, err := s.Summary(ctx, t0, 0); err == nil {
			t.Errorf("Summary with stale-after 0 succeeded")
		}
		// Insert more stale hosts than are listed, oldest last_seen first.
		const hosts = api.MaxStaleListed + 5
		var wg sync.WaitGroup
		for i := range hosts {
			wg.Go(func() {
				if err := s.Ingest(ctx, "g", report(i, nil), ident(report(i, nil)), t0.Add(time.Duration(i)*time.Second)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		sum, err := s.Summary(ctx, t0.Add(30*24*time.Hour), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if sum.StaleHosts != hosts || len(sum.Stale) != api.MaxStaleListed {
			t.Fatalf("StaleHosts = %d, listed %d; want %d, %d", sum.StaleHosts, len(sum.Stale), hosts, api.MaxStaleListed)
		}
		if sum.Stale[0].HostID != hostID(0) || !sum.Stale[0].LastSeen.Equal(t0) {
			t.Errorf("first stale host = %+v, want host 0 seen at %v", sum.Stale[0], t0)
		}
	})
}

// BenchmarkIngest measures durable group-committed intake on the store
// alone (no HTTP), with 64 concurrent reporters per CPU... see bench/census
// for the full path.
func BenchmarkIngest(b *testing.B) {
	for _, mode := range []string{"batched", "one-tx"} {
		b.Run(mode, func(b *testing.B) {
			s, _ := openStore(b, sqliteDB, Options{})
			ingest := s.Ingest
			if mode == "one-tx" {
				ingest = s.IngestOneTx
			}
			var next atomic.Int64
			b.SetParallelism(32)
			written := writeBytes(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					r := report(i, func(r *api.Report) {
						// Real host ids are keyed hashes: random, not sequential.
						sum := sha256.Sum256([]byte(r.HostID))
						r.HostID = hex.EncodeToString(sum[:])
						r.LastUpdateResult = &api.UpdateResult{Time: t0, Target: "16.4.6", Success: true}
					})
					if err := ingest(context.Background(), "staging", r, ident(r), time.Now()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
			b.ReportMetric(float64(writeBytes(b)-written)/1024/float64(b.N), "KiB-written/report")
		})
	}
}

// writeBytes is what this process has had written to storage so far
// (write_bytes of /proc/self/io).
func writeBytes(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Skipf("no I/O accounting: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatalf("parse /proc/self/io: %v", err)
			}
			return n
		}
	}
	tb.Skip("no write_bytes in /proc/self/io")
	return 0
}

// BenchmarkSummary times Summary over -summary-hosts hosts (default 100,000),
// inserted once through the batch writer.
func BenchmarkSummary(b *testing.B) {
	s, _ := openStore(b, sqliteDB, Options{})
	const hosts = 100_000
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= hosts {
					return
				}
				r := report(i, func(r *api.Report) {
					r.Version = []string{"16.4.6", "16.4.5", "15.4.22"}[i%3]
					r.CloudEnvironment = []string{"", "aws", "gcp", "azure"}[i%4]
					r.OSVersion = []string{"Ubuntu 22.04", "Debian GNU/Linux 12", "Alpine Linux 3.20.3", "Amazon Linux 2023", "Red Hat Enterprise Linux 9.4"}[i%5]
				})
				if err := s.Ingest(context.Background(), []string{"staging", "production"}[i%2], r, ident(r), t0); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for b.Loop() {
		sum, err := s.Summary(context.Background(), t0.Add(48*time.Hour), 24*time.Hour)
		if err != nil || sum.TotalHosts != hosts {
			b.Fatalf("Summary = %v hosts, %v", sum.TotalHosts, err)
		}
	}
}

// TestCountsMatchHosts checks that the trigger-kept dims_counts agree with
// countRows runs query, which selects (key, count) rows, and returns them
// as a map.
func countRows(t *testing.T, s *Store, query string) map[string]int {
	t.Helper()
	rows, err := s.db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		counts[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

// the hosts table after hosts move between versions, clouds and groups.
func TestCountsMatchHosts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openStore(t, sqliteDB, Options{})
	versions := []string{"16.4.6", "16.4.5", "15.4.22"}
	for round := range 4 {
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Go(func() {
				r := report(i%25, func(r *api.Report) {
					r.Version = versions[(i+round)%3]
					r.CloudEnvironment = []string{"", "aws"}[(i*round)%2]
				})
				// Reports of one host race each other here: the store
				// refuses those that arrive after a newer one.
				if err := s.Ingest(ctx, []string{"a", "b"}[(i%25+round)%2], r, ident(r), t0); err != nil && !errors.Is(err, api.ErrReplay) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		// Hosts change groups next round: an admin re-enrolls them.
		for i := range 25 {
			if err := s.Reenroll(ctx, hostID(i)); err != nil && !errors.Is(err, ErrUnknownHost) {
				t.Fatal(err)
			}
		}
		// Also delete a host: counts must follow.
		if _, err := s.db.Exec(`DELETE FROM hosts WHERE host_id = ?`, hostID(round)); err != nil {
			t.Fatal(err)
		}
		got := countRows(t, s, `SELECT dims, hosts FROM dims_counts`)
		want := countRows(t, s, `SELECT dims, count(*) FROM hosts GROUP BY dims`)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: dims_counts\n%v\nwant (from hosts)\n%v", round, got, want)
		}
	}
}

func TestForget(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{})
		for i := range 5 {
			r := report(i, func(r *api.Report) {
				r.LastUpdateResult = &api.UpdateResult{Time: t0, Target: "16.4.6", Success: true}
			})
			if err := s.Ingest(ctx, "staging", r, ident(r), t0.Add(time.Duration(i)*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		s.forgetBatch = 1 // two transactions, then one that finds nothing
		n, err := s.Forget(ctx, t0.Add(2*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("Forget = %d, %v; want 2 hosts", n, err)
		}
		// A cutoff after every host's last report deletes nothing.
		if n, err := s.Forget(ctx, t0.Add(5*time.Hour)); !errors.Is(err, ErrAllStale) || n != 0 {
			t.Errorf("Forget of every host = %d, %v; want 0 and ErrAllStale", n, err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if n, err := s.Forget(cancelled, t0.Add(3*time.Hour)); !errors.Is(err, context.Canceled) || n != 0 {
			t.Errorf("Forget with an ended context = %d, %v; want 0 and context.Canceled", n, err)
		}
		sum, err := s.Summary(ctx, t0.Add(5*time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if sum.TotalHosts != 3 || sum.ByVersion["16.4.6"] != 3 || sum.StaleHosts != 2 {
			t.Errorf("after Forget: %d hosts, %v, %d stale; want 3, 3 on 16.4.6, 2 stale", sum.TotalHosts, sum.ByVersion, sum.StaleHosts)
		}
		if h := history(t, s, 0); len(h) != 0 {
			t.Errorf("forgotten host 0 keeps history %v", h)
		}
		if h := history(t, s, 4); len(h) != 1 {
			t.Errorf("host 4 history %v, want 1 entry", h)
		}
	})
}

// testSeq numbers the test reports' signatures, always growing.
var testSeq atomic.Int64

// ident is the identity of a report as its host would sign it: a key
// derived from the host id, and the next sequence number.
func ident(r api.Report) api.Identity {
	seed := sha256.Sum256([]byte(r.HostID))
	key := ed25519.NewKeyFromSeed(seed[:])
	return api.Identity{Key: key.Public().(ed25519.PublicKey), Seq: testSeq.Add(1)}
}
