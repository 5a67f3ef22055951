package proxyapi

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// rolloutPolicy runs 1.0.0 → 2.0.0: staging with two canaries, then
// production, halting at 20% failures from 3 hosts.
var rolloutPolicy = strings.Replace(strings.Replace(strings.Replace(validPolicy,
	"target_version: 16.4.6", "target_version: 2.0.0\n    start_version: 1.0.0\n    halt_failure_percent: 20\n    halt_min_hosts: 3", 1),
	"duration: 1h", "duration: 1h\n        canary_count: 2", 1),
	"duration: 2h", "duration: 2h\n        canary_count: 0", 1)

// tuesdayInProduction is inside production's window (Tuesdays 04:00-06:00).
var tuesdayInProduction = time.Date(2026, 11, 24, 4, 30, 0, 0, time.UTC)

// rolloutHost is a simulated agent: its key, host id and updater id.
type rolloutHost struct {
	n         int
	key       ed25519.PrivateKey
	hostID    string
	updaterID string
	token     string
}

func newRolloutHost(n int, token string) rolloutHost {
	seed := sha256.Sum256([]byte(fmt.Sprintf("rollout host %d", n)))
	return rolloutHost{n: n, key: ed25519.NewKeyFromSeed(seed[:]), hostID: fmt.Sprintf("%064x", n+1),
		updaterID: fmt.Sprintf("00000000-0000-4000-8000-%012x", n+1), token: token}
}

// report posts the host's signed report: running version, and the outcome
// of its last update to target (none when target is empty).
func (h rolloutHost) report(t *testing.T, e *testEnv, version, target string, ok bool) {
	t.Helper()
	r := api.Report{HostID: h.hostID, Version: version, UpdaterStatus: api.StatusEnabled, ReportedAt: e.s.now().UTC(), UpdaterID: h.updaterID}
	if target != "" {
		r.LastUpdateResult = &api.UpdateResult{Time: e.s.now().UTC(), Target: target, Success: ok}
		if !ok {
			r.LastUpdateResult.ErrorCode, r.LastUpdateResult.Error = "health_check", "teleport did not become healthy"
			r.LastUpdateResult.Steps = []api.RunStep{{Name: "download", DurationMS: 5, Result: "ok"}, {Name: "health_check", DurationMS: 30000, Result: "health_check"}}
		}
	}
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := e.postSigned(t, h.token, h.key, e.s.now(), string(body), nil); code != http.StatusAccepted {
		t.Fatalf("host %d report: %d %s", h.n, code, msg)
	}
}

// find asks for the host's answer in group.
func (h rolloutHost) find(t *testing.T, e *testEnv, group string) api.AutoUpdateSettings {
	t.Helper()
	code, _, body := e.do(t, http.MethodGet, api.FindPath+"?group="+group+"&updater_id="+h.updaterID, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("find: %d %s", code, body)
	}
	var resp api.FindResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.AutoUpdate
}

func (e *testEnv) evaluate(t *testing.T) {
	t.Helper()
	if err := e.s.EvaluateRollout(context.Background()); err != nil {
		t.Fatalf("EvaluateRollout: %v", err)
	}
}

func (e *testEnv) rolloutStatus(t *testing.T) RolloutStatus {
	t.Helper()
	code, _, body := e.do(t, http.MethodGet, RolloutPath, nil, bearer(adminToken))
	if code != http.StatusOK {
		t.Fatalf("rollout status: %d %s", code, body)
	}
	var st RolloutStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// splitCanaries checks that g, the staging group after its first
// evaluation, is in canary with two canaries among its hosts, and splits
// hosts into those canaries and the others.
func splitCanaries(t *testing.T, g RolloutGroupStatus, hosts []rolloutHost) (canaries, others []rolloutHost) {
	t.Helper()
	if g.State != rollout.Canary || len(g.Canaries) != 2 || g.Initial != len(hosts) {
		t.Fatalf("%s after the first evaluation: %+v", g.Name, g)
	}
	isCanary := map[string]bool{g.Canaries[0].UpdaterID: true, g.Canaries[1].UpdaterID: true}
	for _, h := range hosts {
		if isCanary[h.updaterID] {
			canaries = append(canaries, h)
		} else {
			others = append(others, h)
		}
	}
	return canaries, others
}

func (e *testEnv) groupState(t *testing.T, group string) RolloutGroupStatus {
	t.Helper()
	for _, g := range e.rolloutStatus(t).Groups {
		if g.Name == group {
			return g
		}
	}
	t.Fatalf("no group %s in the status", group)
	return RolloutGroupStatus{}
}

// TestRolloutEndToEnd drives a rollout through the real HTTPS handler and a
// real SQLite store with signed reports: canaries picked among reporting
// hosts get the target first, a failed canary halts the group before the
// rest sees the target, an operator resumes, the group completes by the
// 90% rule, the next group starts in its window, a 20% failure rate halts
// it, and a rollback sends it back to the start version.
func TestRolloutEndToEnd(t *testing.T) {
	t.Parallel()
	e, _ := signedEnv(t)
	writeFileAtomic(t, e.policy, rolloutPolicy)
	if err := e.s.Reload(); err != nil {
		t.Fatal(err)
	}
	var staging, production []rolloutHost
	for n := range 10 {
		staging = append(staging, newRolloutHost(n, stagingToken))
		production = append(production, newRolloutHost(100+n, productionToken))
	}
	// Before any evaluation, every group is served the start version.
	if s := staging[0].find(t, e, "staging"); s.AgentVersion != "1.0.0" || s.AgentAutoUpdate {
		t.Fatalf("before the rollout: %+v; want 1.0.0 held", s)
	}
	for _, h := range append(staging, production...) {
		h.report(t, e, "1.0.0", "", false)
	}
	e.evaluate(t)
	canaries, others := splitCanaries(t, e.groupState(t, "staging"), staging)
	// Only canaries get the target; production waits.
	if s := canaries[0].find(t, e, "staging"); s.AgentVersion != "2.0.0" || !s.AgentAutoUpdate {
		t.Errorf("canary answer %+v; want 2.0.0 now", s)
	}
	if s := others[0].find(t, e, "staging"); s.AgentVersion != "1.0.0" || s.AgentAutoUpdate {
		t.Errorf("non-canary answer %+v; want 1.0.0 held", s)
	}
	if s := production[0].find(t, e, "production"); s.AgentVersion != "1.0.0" || s.AgentAutoUpdate {
		t.Errorf("production answer %+v; want 1.0.0 held", s)
	}
	// One canary succeeds, one fails its health check: the group halts.
	e.clock.Add(time.Minute)
	canaries[0].report(t, e, "2.0.0", "2.0.0", true)
	canaries[1].report(t, e, "1.0.0", "2.0.0", false)
	e.evaluate(t)
	g := e.groupState(t, "staging")
	if g.State != rollout.Halted || !strings.Contains(g.Reason, canaries[1].hostID) {
		t.Fatalf("staging after a failed canary: %+v", g)
	}
	var failed CanaryStatus
	for _, c := range g.Canaries {
		if c.HostID == canaries[1].hostID {
			failed = c
		}
	}
	if failed.Outcome != "failure" || failed.ErrorCode != "health_check" || len(failed.Steps) != 2 || failed.Error == "" {
		t.Errorf("the failed canary in the status: %+v; want its result and run log", failed)
	}
	for _, h := range []rolloutHost{others[0], canaries[0]} {
		if s := h.find(t, e, "staging"); s.AgentVersion != "1.0.0" || s.AgentAutoUpdate {
			t.Errorf("halted group answer %+v; want 1.0.0 held", s)
		}
	}
	if p := e.groupState(t, "production"); p.State != rollout.Unstarted || !p.HeldBack {
		t.Errorf("production behind a halted group: %+v", p)
	}
	if n := counterValue(t, e.s.metrics.rolloutTransitions.WithLabelValues("staging", "canary", "halted", "proxy")); n != 1 {
		t.Errorf("transition metric = %v; want 1", n)
	}

	// Operator commands: refusals, then resume.
	for _, tt := range []struct {
		path, token string
		code        int
	}{
		{RolloutPath + "/staging/resume", stagingToken, http.StatusForbidden},
		{RolloutPath + "/nope/resume", adminToken, http.StatusNotFound},
		{RolloutPath + "/staging/explode", adminToken, http.StatusConflict},
		{RolloutPath + "/production/resume", adminToken, http.StatusConflict},
		{RolloutPath + "/staging/resume", "", http.StatusUnauthorized},
	} {
		h := http.Header{}
		if tt.token != "" {
			h = bearer(tt.token)
		}
		if code, _, body := e.do(t, http.MethodPost, tt.path, nil, h); code != tt.code {
			t.Errorf("POST %s with %q = %d %s; want %d", tt.path, tt.token, code, body, tt.code)
		}
	}
	if code, _, body := e.do(t, http.MethodPost, RolloutPath+"/staging/resume", strings.NewReader(`{"reason":"bug understood"}`), bearer(adminToken)); code != http.StatusOK {
		t.Fatalf("resume: %d %s", code, body)
	}
	if g = e.groupState(t, "staging"); g.State != rollout.Active || g.Reason != "bug understood" {
		t.Fatalf("staging after resume: %+v", g)
	}
	if s := others[0].find(t, e, "staging"); s.AgentVersion != "2.0.0" || !s.AgentAutoUpdate {
		t.Errorf("active group answer %+v; want 2.0.0 in the window", s)
	}
	// 9 of 10 run the target (one stays failed, under the threshold of
	// 20%... 1 of 10 tried = 10%): done.
	e.clock.Add(time.Minute)
	for _, h := range staging {
		if h.n != canaries[1].n {
			h.report(t, e, "2.0.0", "2.0.0", true)
		}
	}
	e.evaluate(t)
	if g = e.groupState(t, "staging"); g.State != rollout.Done {
		t.Fatalf("staging with 9 of 10 at the target: %+v", g)
	}
	// Production starts only in its own window.
	e.evaluate(t)
	if p := e.groupState(t, "production"); p.State != rollout.Unstarted {
		t.Fatalf("production outside its window: %+v", p)
	}
	e.clock.Set(tuesdayInProduction)
	for _, h := range production {
		h.report(t, e, "1.0.0", "", false)
	}
	e.evaluate(t)
	if p := e.groupState(t, "production"); p.State != rollout.Active {
		t.Fatalf("production in its window: %+v", p)
	}
	// 3 of 10 fail: 30% ≥ 20% from 3 hosts on: halted.
	e.clock.Add(time.Minute)
	for i, h := range production {
		h.report(t, e, map[bool]string{true: "1.0.0", false: "2.0.0"}[i < 3], "2.0.0", i >= 3)
	}
	e.evaluate(t)
	if p := e.groupState(t, "production"); p.State != rollout.Halted || p.Failed != 3 || p.Tried != 10 {
		t.Fatalf("production with 3 of 10 failed: %+v", p)
	}
	if code, _, body := e.do(t, http.MethodPost, RolloutPath+"/production/rollback", nil, bearer(adminToken)); code != http.StatusOK {
		t.Fatalf("rollback: %d %s", code, body)
	}
	if s := production[5].find(t, e, "production"); s.AgentVersion != "1.0.0" || !s.AgentAutoUpdate {
		t.Errorf("rolled-back group answer %+v; want 1.0.0 in the window", s)
	}
	hist := e.rolloutStatus(t).History
	var got []string
	for i := len(hist) - 1; i >= 0; i-- {
		got = append(got, fmt.Sprintf("%s:%s>%s:%s", hist[i].Group, hist[i].From, hist[i].To, hist[i].Actor))
	}
	want := "staging:unstarted>canary:proxy staging:canary>halted:proxy staging:halted>active:operator staging:active>done:proxy " +
		"production:unstarted>active:proxy production:active>halted:proxy production:halted>rolledback:operator"
	if strings.Join(got, " ") != want {
		t.Errorf("history:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if !strings.Contains(e.logs.String(), "Rollout group moved.") {
		t.Error("transitions are not logged")
	}
}

// TestRolloutWithoutStartVersion: a policy without start_version serves
// the target as before, whatever the store says.
func TestRolloutWithoutStartVersion(t *testing.T) {
	t.Parallel()
	e, _ := signedEnv(t)
	h := newRolloutHost(1, stagingToken)
	if s := h.find(t, e, "staging"); s.AgentVersion != "16.4.6" || !s.AgentAutoUpdate {
		t.Errorf("answer %+v; want the target in the window", s)
	}
	if code, _, _ := e.do(t, http.MethodGet, RolloutPath, nil, bearer(adminToken)); code != http.StatusNotFound {
		t.Errorf("rollout status without a rollout = %d; want 404", code)
	}
}

// TestRolloutRefusedReportsChangeNothing: reports the proxy refuses (a
// forged signature, a replay, a canary's host id under another group's
// token, no token) cannot fail a canary and halt its group.
func TestRolloutRefusedReportsChangeNothing(t *testing.T) {
	t.Parallel()
	e, _ := signedEnv(t)
	writeFileAtomic(t, e.policy, rolloutPolicy)
	if err := e.s.Reload(); err != nil {
		t.Fatal(err)
	}
	var hosts []rolloutHost
	for n := range 4 {
		h := newRolloutHost(n, stagingToken)
		h.report(t, e, "1.0.0", "", false)
		hosts = append(hosts, h)
	}
	e.evaluate(t)
	g := e.groupState(t, "staging")
	if g.State != rollout.Canary {
		t.Fatalf("staging: %+v", g)
	}
	var canary rolloutHost
	for _, h := range hosts {
		if h.updaterID == g.Canaries[0].UpdaterID {
			canary = h
		}
	}
	failure := func(at time.Time) string {
		r := api.Report{HostID: canary.hostID, Version: "1.0.0", UpdaterStatus: api.StatusEnabled, ReportedAt: at.UTC(), UpdaterID: canary.updaterID,
			LastUpdateResult: &api.UpdateResult{Time: at.UTC(), Target: "2.0.0", ErrorCode: "health_check"}}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	e.clock.Add(time.Minute)
	seed := sha256.Sum256([]byte("attacker"))
	forger := ed25519.NewKeyFromSeed(seed[:])
	if code, body := e.postSigned(t, stagingToken, forger, e.s.now(), failure(e.s.now()), nil); code != http.StatusConflict && code != http.StatusUnauthorized {
		t.Errorf("forged signature: %d %s; want refused", code, body)
	}
	if code, body := e.postSigned(t, productionToken, canary.key, e.s.now(), failure(e.s.now()), nil); code != http.StatusConflict {
		t.Errorf("the canary's host id under production's token: %d %s; want 409", code, body)
	}
	// A replay: the canary's own signature from before its last report.
	if code, body := e.postSigned(t, stagingToken, canary.key, e.s.now().Add(-2*time.Minute), failure(e.s.now().Add(-2*time.Minute)), nil); code/100 == 2 {
		t.Errorf("replayed report: %d %s; want refused", code, body)
	}
	if code, _, body := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(failure(e.s.now())), nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d %s; want 401", code, body)
	}
	e.evaluate(t)
	if g := e.groupState(t, "staging"); g.State != rollout.Canary || g.Canaries[0].Outcome != "pending" {
		t.Errorf("after refused reports: %+v; want still in canary, the canary pending", g)
	}
	// The canary's own signed failure does halt it.
	canary.report(t, e, "1.0.0", "2.0.0", false)
	e.evaluate(t)
	if g := e.groupState(t, "staging"); g.State != rollout.Halted {
		t.Errorf("after the canary's own failure: %+v; want halted", g)
	}
}

// TestRolloutRefreshFollowsTheDatabase: an operator halts a group through
// the database (as `proxy rollout halt` does, from another process) while
// the proxy runs its loop with evaluations an hour apart. The proxy's
// find answers follow within its refresh interval: the canaries stop
// getting the target.
func TestRolloutRefreshFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "census.db")
	e, _ := storeEnv(t, db, func(c *Config) {
		c.RolloutEvery = time.Hour
		c.RolloutRefreshEvery = 20 * time.Millisecond
	})
	writeFileAtomic(t, e.policy, strings.Replace(rolloutPolicy, "schedule: regular", "schedule: immediate", 1))
	if err := e.s.Reload(); err != nil {
		t.Fatal(err)
	}
	staging := reportStaging(t, e, 6)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.s.RunRollout(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	canary := waitForCanary(t, e, staging)
	// The CLI's store: a second connection pool on the same file.
	cli, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := ApplyRolloutAction(ctx, cli, e.s.Policy(), "staging", rollout.ActionHalt, "bad release", e.s.now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := canary.find(t, e, "staging")
		if s.AgentVersion == "1.0.0" && !s.AgentAutoUpdate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("canary still answered %+v after the halt; want 1.0.0 held", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitForCanary waits for the rollout loop's first evaluation to put
// staging in canary and returns one of its canaries among hosts, once
// find serves it the target.
func waitForCanary(t *testing.T, e *testEnv, hosts []rolloutHost) rolloutHost {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, h := range hosts {
			if s := h.find(t, e, "staging"); s.AgentVersion == "2.0.0" && s.AgentAutoUpdate {
				return h
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no canary got the target from the rollout loop's first evaluation")
	return rolloutHost{}
}

// TestRolloutFindHoldReasons: a host served the start version instead of
// the target is told why, for each reason; a host served the target is
// told nothing.
func TestRolloutFindHoldReasons(t *testing.T) {
	t.Parallel()
	e, _ := storeEnv(t, filepath.Join(t.TempDir(), "census.db"))
	writeFileAtomic(t, e.policy, strings.Replace(rolloutPolicy, "schedule: regular", "schedule: immediate", 1))
	if err := e.s.Reload(); err != nil {
		t.Fatal(err)
	}
	staging := reportStaging(t, e, 6)
	prod := newRolloutHost(100, productionToken)
	prod.report(t, e, "1.0.0", "", false)
	check := func(step string, h rolloutHost, group, version, hold string) {
		t.Helper()
		s := h.find(t, e, group)
		if s.AgentVersion != version || s.AgentUpdateHold != hold {
			t.Errorf("%s: host %d in %s got %s, hold %q; want %s, hold %q", step, h.n, group, s.AgentVersion, s.AgentUpdateHold, version, hold)
		}
	}
	check("before any evaluation", staging[0], "staging", "1.0.0", "the rollout to 2.0.0 has not reached group staging yet")
	e.evaluate(t)
	canaries, others := splitCanaries(t, e.groupState(t, "staging"), staging)
	check("canary", canaries[0], "staging", "2.0.0", "")
	check("canary", others[0], "staging", "1.0.0", "group staging tries 2.0.0 on its canaries first")
	check("canary", prod, "production", "1.0.0", "the rollout to 2.0.0 has not reached group production yet")
	for _, a := range []struct {
		action            rollout.Action
		staging, previous string
	}{
		{rollout.ActionHalt, "the rollout to 2.0.0 is halted in group staging", "halted"},
		{rollout.ActionRollback, "the rollout to 2.0.0 was rolled back in group staging", "rolledback"},
	} {
		if code, _, body := e.do(t, http.MethodPost, RolloutPath+"/staging/"+string(a.action), nil, bearer(adminToken)); code != http.StatusOK {
			t.Fatalf("%s: %d %s", a.action, code, body)
		}
		check(a.previous, canaries[0], "staging", "1.0.0", a.staging)
		check(a.previous, others[0], "staging", "1.0.0", a.staging)
		check(a.previous, prod, "production", "1.0.0", "the rollout to 2.0.0 is halted or rolled back in a group before production")
	}
}
