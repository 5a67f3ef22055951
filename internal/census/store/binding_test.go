package store

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// TestBinding walks one host through its binding: the first report binds
// key and group, other keys, groups and old sequence numbers are refused
// until an admin re-enrolls the host, and even then an old report cannot
// be replayed to bind its key.
func TestBinding(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{})
		r := report(0, nil)
		mine := ident(r)
		other := api.Identity{Key: ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)}
		at := func(id api.Identity, seq int64) api.Identity { id.Seq = seq; return id }
		steps := []struct {
			name  string
			group string
			id    api.Identity
			want  error
		}{
			{"first report binds", "staging", at(mine, 100), nil},
			{"same sequence again", "staging", at(mine, 100), api.ErrReplay},
			{"older sequence", "staging", at(mine, 99), api.ErrReplay},
			{"another key", "staging", at(other, 101), api.ErrKeyMismatch},
			{"another group", "production", at(mine, 101), api.ErrGroupMismatch},
			{"next report", "staging", at(mine, 101), nil},
			{"re-enroll", "", api.Identity{}, nil},
			{"old report replayed after re-enrollment", "production", at(other, 101), api.ErrReplay},
			{"new key, new group", "production", at(other, 102), nil},
			{"the old key is refused now", "production", at(mine, 103), api.ErrKeyMismatch},
		}
		for _, st := range steps {
			var err error
			if st.name == "re-enroll" {
				err = s.Reenroll(ctx, r.HostID)
			} else {
				err = s.Ingest(ctx, st.group, r, st.id, t0)
			}
			if !errors.Is(err, st.want) || (st.want == nil && err != nil) {
				t.Fatalf("%s: %v, want %v", st.name, err, st.want)
			}
			if st.want != nil && !errors.Is(err, api.ErrHostConflict) {
				t.Fatalf("%s: %v does not wrap ErrHostConflict", st.name, err)
			}
		}
		if err := s.Reenroll(ctx, hostID(7)); !errors.Is(err, ErrUnknownHost) {
			t.Errorf("Reenroll of an unknown host = %v, want ErrUnknownHost", err)
		}
		if got := s.Stats(); got.Reports != 3 || got.Refused != 6 {
			t.Errorf("stats %+v, want 3 stored and 6 refused", got)
		}
	})
}

// TestReplayInOneBatch sends the same signed report many times at once:
// whatever batches the writer forms, exactly one is stored.
func TestReplayInOneBatch(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		s, _ := openStore(t, db, Options{})
		r := report(1, nil)
		id := ident(r)
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 50 {
			wg.Go(func() { errs <- s.Ingest(context.Background(), "staging", r, id, t0) })
		}
		wg.Wait()
		close(errs)
		stored := 0
		for err := range errs {
			switch {
			case err == nil:
				stored++
			case !errors.Is(err, api.ErrReplay):
				t.Errorf("Ingest = %v, want nil or ErrReplay", err)
			}
		}
		if stored != 1 {
			t.Errorf("%d copies of one signed report stored, want 1", stored)
		}
	})
}

// TestUnsigned: an unsigned report (the zero Identity) is stored for a
// host without a bound key and binds nothing; once a signed report bound a
// key, unsigned reports are refused.
func TestUnsigned(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{})
		r := report(2, nil)
		if err := s.Ingest(ctx, "staging", r, api.Identity{}, t0); err != nil {
			t.Fatalf("unsigned report of a new host: %v", err)
		}
		if err := s.Ingest(ctx, "production", r, api.Identity{}, t0); err != nil {
			t.Fatalf("unsigned report binds no group, yet: %v", err)
		}
		if err := s.Ingest(ctx, "staging", r, ident(r), t0); err != nil {
			t.Fatalf("first signed report: %v", err)
		}
		if err := s.Ingest(ctx, "staging", r, api.Identity{}, t0); !errors.Is(err, api.ErrUnsignedBound) {
			t.Fatalf("unsigned report of a bound host = %v, want ErrUnsignedBound", err)
		}
		if err := s.Ingest(ctx, "staging", r, api.Identity{Seq: 5}, t0); err == nil {
			t.Fatal("an unsigned identity with a sequence number was accepted")
		}
	})
}

// TestQuotas: a token's max_hosts and new_hosts_per_hour bound the hosts
// its group gains; a host that used up its report bucket is refused until
// it refills; hosts already in the group keep reporting.
func TestQuotas(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{ReportBurst: 2, ReportEvery: time.Minute})
		ingest := func(n int, group string, q api.Quota, at time.Time) error {
			r := report(n, nil)
			id := ident(r)
			id.Quota = q
			return s.Ingest(ctx, group, r, id, at)
		}
		perHour := api.Quota{NewHostsPerHour: 3}
		for n := range 3 {
			if err := ingest(n, "staging", perHour, t0); err != nil {
				t.Fatal(err)
			}
		}
		if err := ingest(3, "staging", perHour, t0.Add(time.Minute)); !errors.Is(err, api.ErrNewHostsPerHour) || !api.RetryLater(err) {
			t.Fatalf("a fourth new host within the hour = %v, want ErrNewHostsPerHour (retry later)", err)
		}
		if err := ingest(3, "production", perHour, t0.Add(time.Minute)); err != nil {
			t.Fatalf("the quota counts per group: %v", err)
		}
		// Host 0's bucket holds 2: its first report and one more.
		if err := ingest(0, "staging", perHour, t0.Add(time.Second)); err != nil {
			t.Fatalf("a host's second report at once: %v", err)
		}
		if err := ingest(0, "staging", perHour, t0.Add(30*time.Second)); !errors.Is(err, api.ErrTooFrequent) {
			t.Fatalf("a host's third report within the minute = %v, want ErrTooFrequent", err)
		}
		if err := ingest(0, "staging", perHour, t0.Add(2*time.Minute)); err != nil {
			t.Fatalf("a known host under a full quota, its bucket refilled: %v", err)
		}
		if err := ingest(4, "staging", perHour, t0.Add(61*time.Minute)); err != nil {
			t.Fatalf("a new host an hour later: %v", err)
		}
		max := api.Quota{MaxHosts: 4}
		if err := ingest(5, "staging", max, t0.Add(62*time.Minute)); !errors.Is(err, api.ErrMaxHosts) || api.RetryLater(err) {
			t.Fatalf("a fifth host in a group of at most 4 = %v, want ErrMaxHosts (no retry)", err)
		}
	})
}

// TestRunLogInHistory: a failed result's message and run log are kept in
// the host's history and exported.
func TestRunLogInHistory(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{})
		steps := []api.RunStep{{Name: "download", DurationMS: 800, Result: "ok"}, {Name: "failed", DurationMS: 30000, Result: "health_check"}}
		r := report(3, func(r *api.Report) {
			r.LastUpdateResult = &api.UpdateResult{Time: t0, Target: "16.4.7", ErrorCode: "health_check", Error: "agent restarted 3 times", Steps: steps}
		})
		if err := s.Ingest(ctx, "staging", r, ident(r), t0); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if err := s.Export(ctx, &out, FormatJSON); err != nil {
			t.Fatal(err)
		}
		var h ExportedHost
		if err := json.Unmarshal([]byte(out.String()), &h); err != nil {
			t.Fatal(err)
		}
		if len(h.UpdateHistory) != 1 || h.UpdateHistory[0].Error != "agent restarted 3 times" || !slices.Equal(h.UpdateHistory[0].Steps, steps) {
			t.Errorf("exported history %+v; want the message and the run log", h.UpdateHistory)
		}
	})
}
