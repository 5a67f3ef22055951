package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// pgURL returns the URL of a new database on the shared cluster without
// the password, and a file holding the password.
func pgURL(t *testing.T) (string, string) {
	t.Helper()
	full := pgtest.Database(t)
	srv := pgtest.Shared(t)
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
