package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestClusterStartsAndRestarts connects with the password and over TLS
// verified against the run's CA, crashes the server and connects again.
func TestClusterStartsAndRestarts(t *testing.T) {
	srv := Fresh(t)
	ctx := context.Background()
	db, err := srv.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	query := func(url string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		defer conn.Close(ctx)
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("SELECT 1 = %d, %v", one, err)
		}
	}
	query(srv.URL(db))
	tlsURL := srv.URL(db)[:len(srv.URL(db))-len("sslmode=disable")] + "sslmode=verify-full&sslrootcert=" + srv.CAFile
	query(tlsURL)
	if err := srv.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(ctx, srv.URL(db)); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	query(srv.URL(db))
}
