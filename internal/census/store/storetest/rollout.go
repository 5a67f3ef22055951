// Package storetest holds conformance suites that every census store
// backend passes (SQLite in census/store, PostgreSQL when several proxies
// share one database): run them from the backend's own tests.
package storetest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// RolloutBackend is a census store that keeps rollout state: reports go in
// through Ingest, the rollout reads and writes through rollout.Store.
type RolloutBackend interface {
	rollout.Store
	// Ingest stores a report signed by id (as census/store.Store.Ingest).
	Ingest(ctx context.Context, group string, r api.Report, id api.Identity, now time.Time) error
}

// t0 is the suite's clock.
var t0 = time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)

// seq numbers the reports' signatures, always growing.
var seq atomic.Int64

// HostID returns the host id of test host n.
func HostID(n int) string { return fmt.Sprintf("%064x", n+1) }

// UpdaterID returns the updater id of test host n.
func UpdaterID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", n+1) }

// Report returns a valid report of host n in group, running version, with
// edit applied.
func Report(n int, group, version string, edit func(*api.Report)) api.Report {
	r := api.Report{
		HostID: HostID(n), Version: version, Services: []string{"node"}, OS: "linux",
		OSVersion: "Ubuntu 22.04", HostArchitecture: "amd64", UpdateGroup: group,
		UpdaterStatus: api.StatusEnabled, ReportedAt: t0, UpdaterID: UpdaterID(n),
	}
	if edit != nil {
		edit(&r)
	}
	return r
}

// Ident is the identity host r signs with: a key derived from its host id
// and the next sequence number.
func Ident(r api.Report) api.Identity {
	seed := sha256.Sum256([]byte(r.HostID))
	key := ed25519.NewKeyFromSeed(seed[:])
	return api.Identity{Key: key.Public().(ed25519.PublicKey), Seq: seq.Add(1)}
}

// Tried edits a report into the outcome of an update to target.
func Tried(target string, ok bool, now time.Time) func(*api.Report) {
	return func(r *api.Report) {
		res := &api.UpdateResult{Time: now, Target: target, Success: ok}
		if !ok {
			res.ErrorCode, res.Error = "health_check", "teleport did not become healthy"
			res.Steps = []api.RunStep{{Name: "download", DurationMS: 20, Result: "ok"}, {Name: "health_check", DurationMS: 3000, Result: "health_check"}}
		}
		r.LastUpdateResult = res
	}
}

// RunRollout runs the rollout conformance suite against fresh, empty
// stores made by newStore (which registers their cleanup with t).
func RunRollout(t *testing.T, newStore func(t *testing.T) RolloutBackend) {
	t.Run("TransitionsAndHistory", func(t *testing.T) { t.Parallel(); testTransitions(t, newStore(t)) })
	t.Run("GuardedWriteOnce", func(t *testing.T) { t.Parallel(); testGuardedOnce(t, newStore(t)) })
	t.Run("NewTargetRestarts", func(t *testing.T) { t.Parallel(); testNewTarget(t, newStore(t)) })
	t.Run("Counts", func(t *testing.T) { t.Parallel(); testCounts(t, newStore(t)) })
	t.Run("HostsAndResults", func(t *testing.T) { t.Parallel(); testHostResults(t, newStore(t)) })
}

func ingest(t *testing.T, s RolloutBackend, r api.Report, now time.Time) {
	t.Helper()
	if err := s.Ingest(context.Background(), r.UpdateGroup, r, Ident(r), now); err != nil {
		t.Fatalf("Ingest host %s: %v", r.HostID, err)
	}
}

// step makes a transition and fails the test unless it applied.
func step(t *testing.T, s RolloutBackend, target string, tr rollout.Transition, now time.Time) {
	t.Helper()
	ok, err := s.RolloutTransition(context.Background(), target, tr, now)
	if err != nil || !ok {
		t.Fatalf("RolloutTransition %s = %t, %v; want applied", tr, ok, err)
	}
}

func group(t *testing.T, s RolloutBackend, target, name string) rollout.GroupState {
	t.Helper()
	gs, err := s.RolloutGroups(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.Name == name {
			return g
		}
	}
	return rollout.GroupState{Name: name, State: rollout.Unstarted}
}

// testTransitions walks a group through every state, checking what is
// stored, the refusals of stale writes, and the history.
func testTransitions(t *testing.T, s RolloutBackend) {
	ctx := context.Background()
	canaries := []rollout.Host{{HostID: HostID(1), UpdaterID: UpdaterID(1)}}
	steps := []rollout.Transition{
		{Group: "dev", From: rollout.Unstarted, To: rollout.Canary, Reason: "its window is open", Actor: "proxy", Initial: 7, Canaries: canaries},
		{Group: "dev", From: rollout.Canary, To: rollout.Active, Reason: "all 1 canaries updated", Actor: "proxy"},
		{Group: "dev", From: rollout.Active, To: rollout.Halted, Reason: "3 of 10 failed", Actor: "proxy"},
		{Group: "dev", From: rollout.Halted, To: rollout.Active, Reason: "operator: resume", Actor: "operator"},
		{Group: "dev", From: rollout.Active, To: rollout.Done, Reason: "9 of 10 run the target", Actor: "proxy"},
		{Group: "dev", From: rollout.Done, To: rollout.RolledBack, Reason: "operator: rollback", Actor: "operator"},
	}
	for i, tr := range steps {
		now := t0.Add(time.Duration(i) * time.Minute)
		cur := group(t, s, "2.0.0", "dev")
		if cur.State != tr.From {
			t.Fatalf("before %s: state %s", tr, cur.State)
		}
		tr.Revision = cur.Revision
		if tr.Canaries == nil {
			tr.Initial, tr.Canaries = cur.Initial, cur.Canaries
		}
		// A write from a stale read (wrong revision or state) is refused.
		stale := tr
		stale.Revision = cur.Revision + 5
		if ok, err := s.RolloutTransition(ctx, "2.0.0", stale, now); ok || err != nil {
			t.Fatalf("stale revision %s = %t, %v; want refused", tr, ok, err)
		}
		if i > 0 {
			wrong := tr
			wrong.From = rollout.Unstarted
			if ok, err := s.RolloutTransition(ctx, "2.0.0", wrong, now); ok || err != nil {
				t.Fatalf("wrong from state %s = %t, %v; want refused", wrong, ok, err)
			}
		}
		step(t, s, "2.0.0", tr, now)
		got := group(t, s, "2.0.0", "dev")
		if got.State != tr.To || got.Reason != tr.Reason || !got.Since.Equal(now) || got.Revision <= cur.Revision ||
			got.Initial != 7 || !slices.Equal(got.Canaries, canaries) {
			t.Fatalf("after %s: stored %+v", tr, got)
		}
	}
	hist, err := s.RolloutHistory(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(steps) {
		t.Fatalf("history has %d entries; want %d: %+v", len(hist), len(steps), hist)
	}
	for i, h := range hist {
		want := steps[len(steps)-1-i] // newest first
		if h.Group != "dev" || h.Target != "2.0.0" || h.From != want.From || h.To != want.To || h.Reason != want.Reason || h.Actor != want.Actor ||
			!h.Time.Equal(t0.Add(time.Duration(len(steps)-1-i)*time.Minute)) {
			t.Errorf("history[%d] = %+v; want %s", i, h, want)
		}
	}
	if h, err := s.RolloutHistory(ctx, 2); err != nil || len(h) != 2 || h[0].To != rollout.RolledBack {
		t.Errorf("RolloutHistory(2) = %+v, %v", h, err)
	}
}

// testGuardedOnce: many proxies deciding the same transition from the same
// read make it exactly once, with one history entry.
func testGuardedOnce(t *testing.T, s RolloutBackend) {
	ctx := context.Background()
	const proxies = 8
	var wg sync.WaitGroup
	var applied atomic.Int32
	errs := make(chan error, proxies)
	for range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.RolloutTransition(ctx, "2.0.0", rollout.Transition{Group: "prod", From: rollout.Unstarted, To: rollout.Active, Reason: "window", Actor: "proxy"}, t0)
			if err != nil {
				errs <- err
			}
			if ok {
				applied.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("RolloutTransition: %v", err)
	}
	if n := applied.Load(); n != 1 {
		t.Fatalf("%d of %d proxies made the same transition; want exactly 1", n, proxies)
	}
	cur := group(t, s, "2.0.0", "prod")
	for range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.RolloutTransition(ctx, "2.0.0", rollout.Transition{Group: "prod", From: rollout.Active, To: rollout.Halted, Reason: "failures", Actor: "proxy", Revision: cur.Revision}, t0)
			if err != nil {
				t.Errorf("RolloutTransition: %v", err)
			}
			if ok {
				applied.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := applied.Load(); n != 2 {
		t.Fatalf("the second transition was made %d times; want once", n-1)
	}
	if h, err := s.RolloutHistory(ctx, 100); err != nil || len(h) != 2 {
		t.Errorf("history = %+v, %v; want 2 entries", h, err)
	}
}

// testNewTarget: a new target version starts a new rollout: the group's
// row for the old target no longer counts, and the first write for the
// new target replaces it once.
func testNewTarget(t *testing.T, s RolloutBackend) {
	ctx := context.Background()
	step(t, s, "2.0.0", rollout.Transition{Group: "dev", From: rollout.Unstarted, To: rollout.Halted, Reason: "x", Actor: "operator"}, t0)
	if g := group(t, s, "3.0.0", "dev"); g.State != rollout.Unstarted || g.Revision != 0 {
		t.Fatalf("group for a new target = %+v; want unstarted without a row", g)
	}
	step(t, s, "3.0.0", rollout.Transition{Group: "dev", From: rollout.Unstarted, To: rollout.Canary, Reason: "window", Actor: "proxy"}, t0)
	if ok, err := s.RolloutTransition(ctx, "3.0.0", rollout.Transition{Group: "dev", From: rollout.Unstarted, To: rollout.Active, Reason: "again", Actor: "proxy"}, t0); ok || err != nil {
		t.Fatalf("a second first write for the same target = %t, %v; want refused", ok, err)
	}
	if g := group(t, s, "3.0.0", "dev"); g.State != rollout.Canary {
		t.Fatalf("group = %+v; want canary", g)
	}
	if gs, err := s.RolloutGroups(ctx, "2.0.0"); err != nil || len(gs) != 0 {
		t.Errorf("groups of the old target = %+v, %v; want none", gs, err)
	}
}

// testCounts: present, up to date, tried and failed per group, among the
// hosts seen since the cutoff only.
func testCounts(t *testing.T, s RolloutBackend) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	n := 0
	add := func(count int, group, version string, seen time.Time, edit func(*api.Report)) {
		for range count {
			ingest(t, s, Report(n, group, version, edit), seen)
			n++
		}
	}
	add(5, "dev", "2.0.0", now, Tried("2.0.0", true, now))   // up to date
	add(2, "dev", "1.0.0", now, Tried("2.0.0", false, now))  // failed and rolled back
	add(3, "dev", "1.0.0", now, nil)                         // not tried
	add(4, "dev", "2.0.0", t0.Add(-time.Hour), nil)          // gone: not present
	add(1, "prod", "2.0.0", now, nil)                        // installed at the target
	add(2, "prod", "1.0.0", now, Tried("1.5.0", false, now)) // failed another version
	add(1, "prod", "1.0.0", now, Tried("2.0.0", true, now))  // odd: success, not running it
	// A host that moves is counted where it is now, once.
	ingest(t, s, Report(n, "dev", "1.0.0", nil), now.Add(-time.Minute))
	ingest(t, s, Report(n, "dev", "2.0.0", Tried("2.0.0", true, now)), now)
	n++
	counts, err := s.RolloutCounts(ctx, "2.0.0", t0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rollout.Counts{
		"dev":  {Present: 11, UpToDate: 6, Tried: 8, Failed: 2},
		"prod": {Present: 4, UpToDate: 1, Tried: 2, Failed: 0},
	}
	if len(counts) != len(want) {
		t.Fatalf("counts = %+v; want %+v", counts, want)
	}
	for g, w := range want {
		if c := counts[g]; c.Present != w.Present || c.UpToDate != w.UpToDate || c.Tried != w.Tried || c.Failed != w.Failed {
			t.Errorf("counts[%s] = %+v; want %+v", g, c, w)
		}
	}
}

// testHostResults: canary candidates are the group's recent hosts with an
// updater id; a host's result carries its last run log.
func testHostResults(t *testing.T, s RolloutBackend) {
	ctx := context.Background()
	ingest(t, s, Report(0, "dev", "1.0.0", Tried("2.0.0", false, t0)), t0)
	ingest(t, s, Report(1, "dev", "2.0.0", Tried("2.0.0", true, t0)), t0)
	ingest(t, s, Report(2, "dev", "1.0.0", func(r *api.Report) { r.UpdaterID = "" }), t0)
	ingest(t, s, Report(3, "dev", "1.0.0", nil), t0.Add(-2*time.Hour))
	ingest(t, s, Report(4, "prod", "1.0.0", nil), t0)
	hosts, err := s.RolloutHosts(ctx, "dev", t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []rollout.Host{{HostID: HostID(0), UpdaterID: UpdaterID(0)}, {HostID: HostID(1), UpdaterID: UpdaterID(1)}}
	if !slices.Equal(hosts, want) {
		t.Errorf("RolloutHosts = %+v; want %+v", hosts, want)
	}
	res, err := s.RolloutHostResults(ctx, []string{HostID(0), HostID(1), HostID(99)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("RolloutHostResults = %+v; want 2 hosts", res)
	}
	failed, ok := res[0], res[1]
	if failed.HostID != HostID(0) || failed.Result != api.ResultFailure || failed.Target != "2.0.0" || failed.ErrorCode != "health_check" ||
		failed.Error == "" || len(failed.Steps) != 2 || failed.Steps[1].Name != "health_check" || !failed.LastSeen.Equal(t0) {
		t.Errorf("failed host = %+v", failed)
	}
	if ok.Version != "2.0.0" || ok.Result != api.ResultSuccess || ok.Error != "" {
		t.Errorf("updated host = %+v", ok)
	}
	if c := rollout.CanaryOutcome(failed, "2.0.0"); !c.Reported || c.Success {
		t.Errorf("failed canary outcome = %+v", c)
	}
}
