package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/internal/tmpfs"
)

// censusDB returns a database holding three hosts, one of them silent for
// two days.
func censusDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "census.db")
	censusDBAt(t, path)
	return path
}

// censusDBAt writes censusDB's three hosts to a new database at path.
func censusDBAt(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, seen := range []time.Time{now, now, now.Add(-48 * time.Hour)} {
		r := api.Report{
			HostID:           fmt.Sprintf("%064x", i+1),
			Version:          []string{"16.4.6", "16.4.6", "16.4.5"}[i],
			Services:         []string{"node", "kube"}[:1+i%2],
			OS:               "linux",
			OSVersion:        "Ubuntu 22.04",
			HostArchitecture: "amd64",
			InstallMethods:   []string{"systemctl", "teleport-update"},
			UpdaterStatus:    api.StatusEnabled,
			ReportedAt:       seen,
		}
		if err := st.Ingest(ctx, "staging", r, testIdentity(i, seen), seen); err != nil {
			t.Fatal(err)
		}
	}
}

// testIdentity is what host i's signed report proves when signed at at.
func testIdentity(i int, at time.Time) api.Identity {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, ed25519.SeedSize))
	return api.Identity{Key: key.Public().(ed25519.PublicKey), Seq: at.UnixNano()}
}

// TestProxyCensusReenroll: a host bound to one key and group is refused
// under another until `proxy census reenroll` unbinds it.
func TestProxyCensusReenroll(t *testing.T) {
	t.Parallel()
	db := censusDB(t)
	host := fmt.Sprintf("%064x", 1)
	r := api.Report{HostID: host, Version: "16.4.6", UpdaterStatus: api.StatusEnabled, ReportedAt: time.Now()}
	ingest := func() error {
		st, err := store.Open(context.Background(), db, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		// A minute on: the host reported when the database was made.
		later := time.Now().Add(time.Minute)
		return st.Ingest(context.Background(), "production", r, testIdentity(9, later), later)
	}
	if err := ingest(); !errors.Is(err, api.ErrHostConflict) {
		t.Fatalf("report under a new key and group before re-enrolling = %v, want a conflict", err)
	}
	if code, out, stderr := runCensusCLI(t, "proxy", "census", "reenroll", "--db", db, host); code != exitOK || !strings.Contains(out, "re-enrolled") {
		t.Fatalf("reenroll: exit %d, %s %s", code, out, stderr)
	}
	if err := ingest(); err != nil {
		t.Fatalf("report under a new key and group after re-enrolling = %v", err)
	}
	if code, _, stderr := runCensusCLI(t, "proxy", "census", "reenroll", "--db", db, fmt.Sprintf("%064x", 99)); code != 1 || !strings.Contains(stderr, "no census host") {
		t.Errorf("reenroll of an unknown host: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCensusCLI(t, "proxy", "census", "reenroll", "--db", db, "db-1"); code != 2 || !strings.Contains(stderr, "64 lowercase hex") {
		t.Errorf("reenroll of a malformed host id: exit %d, %s", code, stderr)
	}
}

func runCensusCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestProxyCensusSummary(t *testing.T) {
	t.Parallel()
	db := censusDB(t)

	code, out, stderr := runCensusCLI(t, "proxy", "census", "--db", db)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	for _, want := range []string{"Census of 3 hosts", "; 1 not seen for 24h0m0s.", "16.4.6", "Ubuntu 22.04", "teleport-update", "none yet", fmt.Sprintf("%064x", 3)} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	code, out, stderr = runCensusCLI(t, "proxy", "census", "--db", db, "--json", "--stale-after", "72h")
	if code != exitOK {
		t.Fatalf("--json: exit %d, stderr %s", code, stderr)
	}
	var sum api.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json output is not a summary: %v\n%s", err, out)
	}
	if sum.TotalHosts != 3 || sum.ByVersion["16.4.6"] != 2 || sum.StaleHosts != 0 || sum.StaleAfter != "72h0m0s" {
		t.Errorf("--json summary = %+v", sum)
	}
}

func TestProxyCensusExport(t *testing.T) {
	t.Parallel()
	db := censusDB(t)
	code, out, stderr := runCensusCLI(t, "proxy", "census", "--db", db, "--format", "posthog")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("posthog export has %d lines, want 3:\n%s", len(lines), out)
	}
	var ev store.PostHogEvent
	if err := json.Unmarshal([]byte(lines[1]), &ev); err != nil {
		t.Fatal(err)
	}
	p := ev.Properties
	if ev.Event != store.PostHogEventName || ev.DistinctID != fmt.Sprintf("%064x", 2) ||
		p["tp.agent.service.kube"] != true || p["tp.agent.install_method.systemctl"] != true ||
		fmt.Sprint(p["tp.agent.services"]) != "[kube node]" || p["tp.agent.version"] != "16.4.6" {
		t.Errorf("posthog event = %+v", ev)
	}

	code, out, _ = runCensusCLI(t, "proxy", "census", "--db", db, "--format", "json")
	if code != exitOK || strings.Count(out, "\n") != 3 || !strings.Contains(out, `"last_seen"`) {
		t.Errorf("json export: exit %d\n%s", code, out)
	}
}

func TestProxyCensusErrors(t *testing.T) {
	t.Parallel()
	db := censusDB(t)
	missing := filepath.Join(t.TempDir(), "nope.db")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no db", []string{"proxy", "census"}, exitUsage},
		{"bad format", []string{"proxy", "census", "--db", db, "--format", "csv"}, exitUsage},
		{"json and format", []string{"proxy", "census", "--db", db, "--json", "--format", "posthog"}, exitUsage},
		{"bad stale-after", []string{"proxy", "census", "--db", db, "--stale-after", "-1h"}, exitUsage},
		{"unparsable stale-after", []string{"proxy", "census", "--db", db, "--stale-after", "soon"}, exitUsage},
		{"missing database", []string{"proxy", "census", "--db", missing}, exitFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCensusCLI(t, tt.args...)
			if code != tt.code || stderr == "" {
				t.Errorf("exit %d (stderr %q), want %d with a reason", code, stderr, tt.code)
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("census created the missing database %s (stat: %v)", missing, err)
	}
}

// TestProxyCensusReadOnly reads a database on a file system remounted
// read-only, where nothing can be written (not even by root), and refuses
// a database of a newer schema with the way out.
func TestProxyCensusReadOnly(t *testing.T) {
	t.Parallel()
	dir := tmpfs.Mount(t, 4<<20)
	db := filepath.Join(dir, "census.db")
	censusDBAt(t, db)
	tmpfs.ReadOnly(t, dir)
	code, out, stderr := runCensusCLI(t, "proxy", "census", "--db", db)
	if code != exitOK || !strings.Contains(out, "Census of 3 hosts") {
		t.Errorf("census of a read-only database: exit %d, stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	if code, out, stderr = runCensusCLI(t, "proxy", "census", "--db", db, "--format", "json"); code != exitOK || strings.Count(out, "\n") != 3 {
		t.Errorf("export of a read-only database: exit %d, stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}

	newer := censusDB(t)
	sqldb, err := sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqldb.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	sqldb.Close()
	code, _, stderr = runCensusCLI(t, "proxy", "census", "--db", newer)
	if code != exitFailure || !strings.Contains(stderr, "newer schema") || !strings.Contains(stderr, "version 99") ||
		!strings.Contains(stderr, "use the teleport-update of the proxy that wrote it") {
		t.Errorf("census of a newer schema: exit %d, stderr %s; want exit 1 naming the version and what to do", code, stderr)
	}
}

// postReport posts a valid census report with token and returns the code.
func postReport(t *testing.T, client *http.Client, url, token string) int {
	t.Helper()
	return postHostReport(t, client, url, token, strings.Repeat("b", 64), func(req *http.Request, body []byte) {
		signCensus(t, req, body)
	})
}

// postHostReport posts a valid census report of hostID with token, signed
// by sign, and returns the status code.
func postHostReport(t *testing.T, client *http.Client, url, token, hostID string, sign func(*http.Request, []byte)) int {
	t.Helper()
	report, _ := json.Marshal(api.Report{HostID: hostID, Version: "16.4.6", OS: "linux",
		HostArchitecture: "amd64", UpdaterStatus: api.StatusEnabled, ReportedAt: time.Now()})
	req, err := http.NewRequest(http.MethodPost, url+api.CensusPath, bytes.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	sign(req, report)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestProxyServeTokensReload revokes a token with SIGHUP, and brings it
// back by editing the file alone (the watcher). Not parallel: the signal
// goes to the whole test process, which holds its own SIGHUP subscription
// so that no moment leaves SIGHUP with its default action (exit).
func TestProxyServeTokensReload(t *testing.T) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	dir := t.TempDir()
	leaked, kept := strings.Repeat("l", 40), strings.Repeat("k", 40)
	tokens := filepath.Join(dir, "tokens.yaml")
	writeTokens := func(toks ...string) {
		t.Helper()
		var b strings.Builder
		b.WriteString("tokens:\n")
		for _, tok := range toks {
			fmt.Fprintf(&b, "  - token: %s\n    group: staging\n", tok)
		}
		tmp := tokens + ".tmp"
		if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, tokens); err != nil {
			t.Fatal(err)
		}
	}
	writeTokens(leaked, kept)
	url, client, stderr, stop := startProxy(t, "--tokens", tokens, "--census-db", filepath.Join(dir, "census.db"))
	if code := postReport(t, client, url, leaked); code != http.StatusAccepted {
		t.Fatalf("report before revocation = %d; want 202", code)
	}
	writeTokens(kept)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "Enrollment tokens checked on SIGHUP.") {
		if time.Now().After(deadline) {
			t.Fatalf("no tokens reload after SIGHUP:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code := postReport(t, client, url, leaked); code != http.StatusUnauthorized {
		t.Errorf("revoked token after SIGHUP = %d; want 401", code)
	}
	writeTokens(leaked, kept)
	for postReport(t, client, url, leaked) != http.StatusAccepted {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not put the edited tokens file in effect:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := client.Get(url + proxyapi.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"teleport_update_census_reports_stored_total 2\n", "teleport_update_census_write_errors_total 0\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	if code := stop(); code != exitOK {
		t.Fatalf("proxy serve exited %d; stderr:\n%s", code, stderr.String())
	}
}

// TestProxyServeCensusFlags checks the warning of census intake without
// tokens, and that a tokens file others may read, or a bad
// --trusted-proxies, stops proxy serve with a clear error.
func TestProxyServeCensusFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, _, stderr, stop := startProxy(t, "--census-db", filepath.Join(dir, "census.db"))
	if code := stop(); code != exitOK {
		t.Fatalf("proxy serve exited %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `level=WARN msg="Census intake is on (--census-db) but no --tokens file is set: every census report will be refused."`) {
		t.Errorf("no warning for --census-db without --tokens:\n%s", stderr.String())
	}

	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - token: "+strings.Repeat("t", 40)+"\n    group: staging\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tokens, 0o644); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, _ := writeTestCert(t, dir)
	code, _, errb := runCensusCLI(t, "proxy", "serve", "--resource", filepath.Join("..", "..", "resources", "autoupdate_version.yaml"),
		"--listen", "127.0.0.1:0", "--tls-cert", certPath, "--tls-key", keyPath, "--tokens", tokens)
	if code != exitFailure || !strings.Contains(errb, "unsafe tokens file") || !strings.Contains(errb, "group/world-readable") {
		t.Errorf("world-readable tokens file: exit %d, %s; want exit 1 naming the problem", code, errb)
	}
	code, _, errb = runCensusCLI(t, "proxy", "serve", "--resource", "x", "--tls-cert", "x", "--tls-key", "x", "--trusted-proxies", "10.0.0.0/8,lb.example.com")
	if code != exitUsage || !strings.Contains(errb, "--trusted-proxies") || !strings.Contains(errb, "lb.example.com") {
		t.Errorf("bad --trusted-proxies: exit %d, %s; want exit 2 naming the entry", code, errb)
	}
}

// TestProxyServeForgetsSilentHosts checks proxy serve deletes the hosts
// not seen for --census-forget-after (here the one silent for two days),
// and keeps them with 0.
func TestProxyServeForgetsSilentHosts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		after  string
		hosts  int
		logged string // waited for before the proxy is stopped
	}{
		{"24h", 2, "Forgot census hosts"},
		{"0", 3, ""},
		// Every host silent for longer than 1ms: none is deleted.
		{"1ms", 3, "No census host has reported within --census-forget-after"},
	} {
		t.Run(tc.after, func(t *testing.T) {
			t.Parallel()
			db := censusDB(t)
			_, _, stderr, stop := startProxy(t, "--census-db", db, "--census-forget-after", tc.after)
			if tc.logged != "" {
				deadline := time.Now().Add(30 * time.Second)
				for !strings.Contains(stderr.String(), tc.logged) {
					if time.Now().After(deadline) {
						t.Fatalf("no hosts forgotten; stderr:\n%s", stderr.String())
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if code := stop(); code != exitOK {
				t.Fatalf("proxy serve exit %d; stderr:\n%s", code, stderr.String())
			}
			code, out, errb := runCensusCLI(t, "proxy", "census", "--db", db, "--json")
			var sum api.Summary
			if code != exitOK || json.Unmarshal([]byte(out), &sum) != nil {
				t.Fatalf("proxy census: exit %d, %s %s", code, out, errb)
			}
			if sum.TotalHosts != tc.hosts || sum.StaleHosts != tc.hosts-2 || strings.Contains(stderr.String(), "level=ERROR") {
				t.Errorf("after proxy serve with --census-forget-after %s: %d hosts (%d stale), want %d; stderr:\n%s",
					tc.after, sum.TotalHosts, sum.StaleHosts, tc.hosts, stderr.String())
			}
		})
	}
	code, _, errb := runCensusCLI(t, "proxy", "serve", "--resource", "x", "--tls-cert", "x", "--tls-key", "x", "--census-forget-after", "-1h")
	if code != exitUsage || !strings.Contains(errb, "--census-forget-after must not be negative") {
		t.Errorf("negative --census-forget-after: exit %d, %s", code, errb)
	}
}
