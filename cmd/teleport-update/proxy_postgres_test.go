package main

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/httpsig"
	"github.com/gravitational/teleport-update/internal/pgtest"
	"github.com/gravitational/teleport-update/internal/proxyapi"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// pgURL returns the URL of a new database on the shared cluster without
// the password, and a file holding the password.
func pgURL(t *testing.T) (string, string) {
	t.Helper()
	return withoutPassword(t, pgtest.Shared(t), pgtest.Database(t))
}

// withoutPassword returns full, a URL of a database on srv, without the
// password, and a file holding the password.
func withoutPassword(t *testing.T, srv *pgtest.Server, full string) (string, string) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pgpassword")
	if err := os.WriteFile(pw, []byte(srv.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(full, ":"+srv.Password()+"@", "@", 1), pw
}

// TestProxyCensusMigrateToPostgres copies a census file into PostgreSQL
// with proxy census migrate, then reads and re-enrolls through the URL.
func TestProxyCensusMigrateToPostgres(t *testing.T) {
	t.Parallel()
	file := censusDB(t)
	dbURL, pw := pgURL(t)
	code, out, stderr := runCensusCLI(t, "proxy", "census", "migrate", "--from", file, "--to", dbURL, "--to-password-file", pw)
	if code != exitOK || !strings.Contains(out, "Copied 3 census hosts") || !strings.Contains(out, "staging\t3") {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, stderr = runCensusCLI(t, "proxy", "census", "--db", dbURL, "--db-password-file", pw)
	if code != exitOK || !strings.Contains(out, "Census of 3 hosts") || !strings.Contains(out, "; 1 not seen for 24h0m0s.") {
		t.Errorf("summary of the copy: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, stderr = runCensusCLI(t, "proxy", "census", "reenroll", "--db", dbURL, "--db-password-file", pw, fmt.Sprintf("%064x", 2))
	if code != exitOK || !strings.Contains(out, "re-enrolled") {
		t.Errorf("reenroll on PostgreSQL: exit %d\n%s\n%s", code, out, stderr)
	}
	code, _, stderr = runCensusCLI(t, "proxy", "census", "migrate", "--from", file, "--to", dbURL, "--to-password-file", pw)
	if code != exitFailure || !strings.Contains(stderr, "already holds hosts") {
		t.Errorf("second migrate: exit %d, %s", code, stderr)
	}
}

// TestCensusPasswordNotInArgv refuses a PostgreSQL URL with a password on
// the command line, where other users can read it.
func TestCensusPasswordNotInArgv(t *testing.T) {
	t.Parallel()
	withPassword := "postgres://census:s3cret@127.0.0.1:1/census"
	for _, args := range [][]string{
		{"proxy", "census", "--db", withPassword},
		{"proxy", "census", "reenroll", "--db", withPassword, fmt.Sprintf("%064x", 1)},
		{"proxy", "census", "migrate", "--from", "census.db", "--to", withPassword},
		{"proxy", "serve", "--resource", "r.yaml", "--tls-cert", "c", "--tls-key", "k", "--census-db", withPassword},
	} {
		code, _, stderr := runCensusCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "password") || strings.Contains(stderr, "s3cret") {
			t.Errorf("%v: exit %d, %s; want a usage error that does not repeat the password", args, code, stderr)
		}
	}
}

// postSigned posts host n's census report, signed by its own key, with
// token and returns the status code.
func postSigned(t *testing.T, client *http.Client, url, token string, n int) int {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	binary.BigEndian.PutUint64(seed, uint64(n)+1)
	return postHostReport(t, client, url, token, fmt.Sprintf("%064x", n+1), func(req *http.Request, body []byte) {
		if err := httpsig.Sign(req, body, ed25519.NewKeyFromSeed(seed), time.Now()); err != nil {
			t.Fatal(err)
		}
	})
}

// getCode GETs url and returns the status code.
func getCode(t *testing.T, client *http.Client, url string) int {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTwoProxiesOnePostgres runs two proxy serve on one PostgreSQL: both
// take reports into the one census; when the database goes away both keep
// answering find, say they are not ready, and take reports again by
// themselves once it is back.
func TestTwoProxiesOnePostgres(t *testing.T) {
	t.Parallel()
	srv, full := pgtest.FreshDatabase(t)
	ctx := context.Background()
	dir := t.TempDir()
	dbURL, pw := withoutPassword(t, srv, full)
	token := strings.Repeat("t", 40)
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - token: "+token+"\n    group: staging\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type proxy struct {
		url    string
		client *http.Client
	}
	var proxies []proxy
	for range 2 {
		url, client, _, _ := startProxy(t, "--tokens", tokens, "--census-db", dbURL, "--census-db-password-file", pw)
		proxies = append(proxies, proxy{url, client})
	}
	hosts := 0
	report := func(want int) {
		t.Helper()
		for i := range 10 {
			p := proxies[i%2]
			if code := postSigned(t, p.client, p.url, token, hosts); code != want {
				t.Fatalf("report of host %d to proxy %d = %d, want %d", hosts, i%2, code, want)
			}
			if want == http.StatusAccepted {
				hosts++
			}
		}
	}
	census := func() int {
		t.Helper()
		code, out, stderr := runCensusCLI(t, "proxy", "census", "--db", dbURL, "--db-password-file", pw, "--json")
		var sum api.Summary
		if code != exitOK || json.Unmarshal([]byte(out), &sum) != nil {
			t.Fatalf("proxy census: exit %d\n%s\n%s", code, out, stderr)
		}
		return sum.TotalHosts
	}
	waitReady := func(want int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for _, p := range proxies {
			for getCode(t, p.client, p.url+proxyapi.ReadyPath) != want {
				if time.Now().After(deadline) {
					t.Fatalf("proxy %s /readyz never answered %d", p.url, want)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	report(http.StatusAccepted)
	if n := census(); n != hosts {
		t.Fatalf("census holds %d hosts, want %d reported through both proxies", n, hosts)
	}
	waitReady(http.StatusOK)

	if err := srv.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(http.StatusServiceUnavailable)
	for _, p := range proxies {
		if code := getCode(t, p.client, p.url+api.FindPath+"?group=staging"); code != http.StatusOK {
			t.Errorf("find without the database = %d, want 200", code)
		}
	}
	report(http.StatusServiceUnavailable)

	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(http.StatusOK)
	report(http.StatusAccepted)
	if n := census(); n != hosts {
		t.Errorf("census holds %d hosts after the database came back, want %d", n, hosts)
	}
}
