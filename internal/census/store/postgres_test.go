package store

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestPostgresSchema migrates from every earlier schema version, refuses a
// newer one, and opens read-only only the current one.
func TestPostgresSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for from := range pgSchemaVersion {
		t.Run(fmt.Sprintf("from%d", from), func(t *testing.T) {
			t.Parallel()
			dbURL := pgtest.Database(t)
			if from > 0 {
				s, err := OpenPostgres(ctx, dbURL, Options{})
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				execURL(t, dbURL, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
				p := openPool(t, dbURL)
				if err := migratePostgres(ctx, p, from); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := OpenPostgresReadOnly(ctx, dbURL, Options{}); !errors.Is(err, ErrNotCensus) && !errors.Is(err, ErrOlderSchema) {
				t.Errorf("read-only open of version %d = %v, want ErrNotCensus or ErrOlderSchema", from, err)
			}
			s, _ := openStore(t, func(testing.TB) string { return dbURL }, Options{})
			r := report(0, nil)
			if err := s.Ingest(ctx, "staging", r, ident(r), t0); err != nil {
				t.Fatal(err)
			}
			ro, err := OpenReadOnly(ctx, dbURL, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			if err := ro.Ingest(ctx, "staging", r, ident(r), t0); !errors.Is(err, ErrReadOnly) {
				t.Errorf("Ingest on a read-only store = %v", err)
			}
			if sum, err := ro.Summary(ctx, t0, time.Hour); err != nil || sum.TotalHosts != 1 {
				t.Errorf("read-only Summary = %v, %v; want 1 host", sum, err)
			}
		})
	}
	t.Run("newer", func(t *testing.T) {
		t.Parallel()
		dbURL := pgtest.Database(t)
		s, err := OpenPostgres(ctx, dbURL, Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		execURL(t, dbURL, fmt.Sprintf(`UPDATE census_schema SET version = %d`, pgSchemaVersion+1))
		if _, err := Open(ctx, dbURL, Options{}); !errors.Is(err, ErrNewerSchema) {
			t.Errorf("Open of a newer schema = %v, want ErrNewerSchema", err)
		}
		if _, err := OpenReadOnly(ctx, dbURL, Options{}); !errors.Is(err, ErrNewerSchema) {
			t.Errorf("OpenReadOnly of a newer schema = %v, want ErrNewerSchema", err)
		}
	})
}

func openPool(t *testing.T, dbURL string) *pgDB {
	t.Helper()
	s, err := OpenPostgresReadOnly(context.Background(), dbURL, Options{})
	if err == nil {
		t.Cleanup(func() { s.Close() })
		return s.pg
	}
	// No census schema yet: a read-only open refuses it.
	p, perr := newPool(context.Background(), dbURL, Options{})
	if perr != nil {
		t.Fatal(perr)
	}
	t.Cleanup(p.pool.Close)
	return p
}

// execURL runs one statement on the database at dbURL.
func execURL(t *testing.T, dbURL, query string) {
	t.Helper()
	p, err := newPool(context.Background(), dbURL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.pool.Close()
	if _, err := p.pool.Exec(context.Background(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// TestPostgresTwoProxiesRace runs the attacks that need two writers on one
// database: two proxies taking the first reports of the same new hosts
// signed by different keys (one key binds, the other is refused), and two
// proxies admitting new hosts of one group against a quota (no more than
// the quota get in).
func TestPostgresTwoProxiesRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.Database(t)
	a, _ := openStore(t, func(testing.TB) string { return dbURL }, Options{})
	b, _ := openStore(t, func(testing.TB) string { return dbURL }, Options{})
	const hosts = 40
	var bound, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range hosts {
		for k, s := range []*Store{a, b} {
			wg.Go(func() {
				r := report(i, nil)
				seed := make([]byte, ed25519.SeedSize)
				seed[0], seed[1] = byte(i), byte(k) // a different key at each proxy
				id := api.Identity{Key: ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), Seq: 1}
				switch err := s.Ingest(ctx, "staging", r, id, t0); {
				case err == nil:
					bound.Add(1)
				case errors.Is(err, api.ErrKeyMismatch), errors.Is(err, api.ErrReplay):
					refused.Add(1)
				default:
					t.Errorf("Ingest: %v", err)
				}
			})
		}
	}
	wg.Wait()
	if bound.Load() != hosts || refused.Load() != hosts {
		t.Errorf("%d reports bound a key and %d were refused; want %d each", bound.Load(), refused.Load(), hosts)
	}

	const quota = 7
	var admitted atomic.Int64
	for i := range 30 {
		wg.Go(func() {
			r := report(1000+i, nil)
			id := ident(r)
			id.Quota = api.Quota{MaxHosts: quota}
			s := []*Store{a, b}[i%2]
			switch err := s.Ingest(ctx, "quota", r, id, t0); {
			case err == nil:
				admitted.Add(1)
			case !errors.Is(err, api.ErrMaxHosts):
				t.Errorf("Ingest: %v", err)
			}
		})
	}
	wg.Wait()
	sum, err := a.Summary(ctx, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if admitted.Load() != quota || sum.ByGroup["quota"] != quota {
		t.Errorf("%d hosts admitted, %d stored in the group; want the quota, %d", admitted.Load(), sum.ByGroup["quota"], quota)
	}
}

// TestPostgresCredentials connects with the password from a file, from
// PGPASSFILE, and over TLS verified against the server's CA, and keeps the
// password out of error messages.
func TestPostgresCredentials(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Shared(t)
	name, err := srv.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	noPassword := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgtest.User, srv.Port(), name)
	open := func(dbURL string, opts Options) error {
		t.Helper()
		s, err := Open(ctx, dbURL, opts)
		if err == nil {
			s.Close()
		}
		return err
	}
	t.Setenv("PGPASSFILE", filepath.Join(dir, "none"))
	if err := open(noPassword, Options{}); err == nil {
		t.Fatal("connected without a password")
	}
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(srv.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := open(noPassword, Options{PasswordFile: pwFile}); err != nil {
		t.Errorf("with --password-file: %v", err)
	}
	pgpass := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(pgpass, fmt.Appendf(nil, "127.0.0.1:%d:*:%s:%s\n", srv.Port(), pgtest.User, srv.Password()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSFILE", pgpass)
	if err := open(noPassword, Options{}); err != nil {
		t.Errorf("with PGPASSFILE: %v", err)
	}
	tlsURL := strings.Replace(noPassword, "sslmode=disable", "sslmode=verify-full&sslrootcert="+url.QueryEscape(srv.CAFile), 1)
	if err := open(tlsURL, Options{}); err != nil {
		t.Errorf("with sslmode=verify-full: %v", err)
	}
	// Another CA: the server's certificate is refused.
	otherCA := filepath.Join(dir, "other-ca.crt")
	other, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop()
	data, err := os.ReadFile(other.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherCA, data, 0o600); err != nil {
		t.Fatal(err)
	}
	wrongCA := strings.Replace(noPassword, "sslmode=disable", "sslmode=verify-full&sslrootcert="+url.QueryEscape(otherCA), 1)
	if err := open(wrongCA, Options{}); err == nil {
		t.Error("sslmode=verify-full accepted a certificate of another CA")
	}
	// A wrong password in the URL: refused, and not in the message.
	t.Setenv("PGPASSFILE", filepath.Join(dir, "none"))
	wrong := strings.Replace(noPassword, pgtest.User+"@", pgtest.User+":s3cret-wrong@", 1)
	if err := open(wrong, Options{}); err == nil || strings.Contains(err.Error(), "s3cret-wrong") {
		t.Errorf("wrong password: %v (must fail without showing the password)", err)
	}
	if got := Redact(wrong); strings.Contains(got, "s3cret-wrong") {
		t.Errorf("Redact = %q", got)
	}
}

// TestPostgresRestartDuringIntake crashes PostgreSQL while reports pour in:
// every report acknowledged before, during or after is stored, and intake
// resumes by itself once the server is back.
func TestPostgresRestartDuringIntake(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, dbURL := pgtest.FreshDatabase(t)
	s, _ := openStore(t, func(testing.TB) string { return dbURL }, Options{})
	var acked sync.Map
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1))
				r := report(i, nil)
				ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := s.Ingest(ictx, "staging", r, ident(r), t0)
				cancel()
				if err == nil {
					acked.Store(r.HostID, true)
				} else {
					failed.Add(1)
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	waitAcked := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for count(&acked) < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d reports acknowledged, want %d", count(&acked), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAcked(200)
	if err := srv.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	before := count(&acked)
	waitAcked(before + 200) // intake resumed without reopening the store
	close(stop)
	wg.Wait()
	if failed.Load() == 0 {
		t.Error("no report failed while the server was down: the crash did not happen during intake")
	}
	var buf strings.Builder
	if err := s.Export(ctx, &buf, FormatJSON); err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for line := range strings.Lines(buf.String()) {
		stored[line[strings.Index(line, `"host_id":"`)+11:][:64]] = true
	}
	lost := 0
	acked.Range(func(k, _ any) bool {
		if !stored[k.(string)] {
			lost++
		}
		return true
	})
	if lost > 0 {
		t.Errorf("%d of %d acknowledged reports lost in the crash", lost, count(&acked))
	}
	t.Logf("%d reports acknowledged, %d failed while the server was down, none lost", count(&acked), failed.Load())
}

func count(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

// TestPostgresNoParallelScans: the proxy's sessions plan its scans over
// every host without parallel workers, unless the URL says otherwise.
func TestPostgresNoParallelScans(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.Database(t)
	for url, want := range map[string]string{dbURL: "0", dbURL + "&max_parallel_workers_per_gather=3": "3"} {
		st, _ := openStore(t, func(testing.TB) string { return url }, Options{})
		var got string
		if err := st.pg.pool.QueryRow(context.Background(), `SHOW max_parallel_workers_per_gather`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: max_parallel_workers_per_gather = %s, want %s", Redact(url), got, want)
		}
	}
}

// TestPostgresHostReadKeepsIndex: the writer's read of a batch's hosts is
// a prepared statement. Executed often while the table is small, it must
// still look hosts up by their key once the table has grown, without an
// ANALYZE in between: PostgreSQL's cached generic plan, made for the small
// table, scanned every row for every batch while a fleet enrolled.
func TestPostgresHostReadKeepsIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, _ := openStore(t, pgtest.Database, Options{})
	conn, err := st.pg.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	exec := func(q string) string {
		t.Helper()
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return strings.Join(lines, "\n")
	}
	// pgx.QueryExecModeSimpleProtocol would not keep a plan: prepare by
	// name, as the pool's statement cache does.
	exec(`PREPARE host_read(text[]) AS ` + pgHostSQL)
	for range 10 {
		exec(`EXECUTE host_read('{a,b,c}')`)
	}
	exec(`INSERT INTO hosts (host_id, grp, version, services, os, os_version, arch, glibc, install_methods,
		container_runtime, container_orchestrator, cloud, updater_status, last_result, last_update_target,
		last_update_error, reported_at, first_seen, last_seen, dims, history)
		SELECT 'host-' || i, 'g', '1.0.0', '[]', '', '', '', '', '[]', '', '', '', '', 'none', '', '', 0, 0, 0, '', '[]'
		FROM generate_series(1, 20000) AS i`)
	plan := exec(`EXPLAIN EXECUTE host_read('{host-1,host-2,host-3}')`)
	if strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, "hosts_pkey") {
		t.Errorf("the batch's host read on 20,000 hosts does not use the primary key:\n%s", plan)
	}
}
