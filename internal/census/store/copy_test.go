package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/pgtest"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// TestCopyToPostgres copies an SQLite census into PostgreSQL: both export
// the same, the bindings travel (a replayed report is refused, the next
// one stored), and a second copy into the now non-empty census is
// refused.
func TestCopyToPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src, path := openStore(t, sqliteDB, Options{ReportBurst: 5, ReportEvery: time.Minute})
	var last [6]api.Identity
	for i := range 6 {
		for round := range 3 {
			r := report(i, func(r *api.Report) {
				r.LastUpdateResult = &api.UpdateResult{Time: t0.Add(time.Duration(round) * time.Hour), Target: "16.4.6", Success: round != 1}
				if round == 1 {
					r.LastUpdateResult.ErrorCode = "health_check"
				}
			})
			last[i] = ident(r)
			if err := src.Ingest(ctx, []string{"staging", "prod"}[i%2], r, last[i], t0.Add(time.Duration(i+round)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dbURL := pgtest.Database(t)
	res, err := CopyToPostgres(ctx, path, dbURL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Hosts != 6 || res.ByGroup["staging"] != 3 || res.ByGroup["prod"] != 3 {
		t.Errorf("copied %+v, want 3 hosts in each of two groups", res)
	}
	dst, _ := openStore(t, func(testing.TB) string { return dbURL }, Options{ReportBurst: 5, ReportEvery: time.Minute})
	var a, b bytes.Buffer
	if err := src.Export(ctx, &a, FormatJSON); err != nil {
		t.Fatal(err)
	}
	if err := dst.Export(ctx, &b, FormatJSON); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() {
		t.Errorf("PostgreSQL exports\n%s\nSQLite\n%s", b.String(), a.String())
	}
	r := report(0, nil)
	if err := dst.Ingest(ctx, "staging", r, last[0], t0.Add(time.Hour)); !errors.Is(err, api.ErrReplay) {
		t.Errorf("replayed report after the copy = %v, want ErrReplay", err)
	}
	if err := dst.Ingest(ctx, "prod", r, ident(r), t0.Add(time.Hour)); !errors.Is(err, api.ErrGroupMismatch) {
		t.Errorf("report in another group after the copy = %v, want ErrGroupMismatch", err)
	}
	if err := dst.Ingest(ctx, "staging", r, ident(r), t0.Add(time.Hour)); err != nil {
		t.Errorf("next report after the copy: %v", err)
	}
	if _, err := CopyToPostgres(ctx, path, dbURL, Options{}); !errors.Is(err, ErrTargetNotEmpty) {
		t.Errorf("second copy = %v, want ErrTargetNotEmpty", err)
	}

	// A database holding rollout state but no hosts is not empty either.
	other := pgtest.Database(t)
	pgStore, _ := openStore(t, func(testing.TB) string { return other }, Options{})
	if ok, err := pgStore.RolloutTransition(ctx, "2.0.0", rollout.Transition{Group: "dev", From: rollout.Unstarted, To: rollout.Active, Actor: "operator"}, t0); !ok || err != nil {
		t.Fatalf("rollout transition = %v, %v", ok, err)
	}
	if _, err := CopyToPostgres(ctx, path, other, Options{}); !errors.Is(err, ErrTargetNotEmpty) {
		t.Errorf("copy into a database with rollout state = %v, want ErrTargetNotEmpty", err)
	}
}
