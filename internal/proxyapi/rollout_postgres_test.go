package proxyapi

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/pgtest"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestRolloutTwoProxiesPostgres drives a rollout through two proxies that
// share one PostgreSQL database: reports arrive at both, both evaluate at
// once after every round (racing to make the same transition), and the
// group goes canary → halted (a failed canary) → active (an operator, at
// one proxy) → done. Each transition is made once, both proxies answer
// find alike, and both report the same history.
func TestRolloutTwoProxiesPostgres(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.Database(t)
	var envs []*testEnv
	for range 2 {
		e, _ := storeEnv(t, dbURL)
		writeFileAtomic(t, e.policy, rolloutPolicy)
		if err := e.s.Reload(); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	tick := func(d time.Duration) {
		for _, e := range envs {
			e.clock.Add(d)
		}
	}
	evaluateBoth := func() {
		t.Helper()
		var wg sync.WaitGroup
		for _, e := range envs {
			wg.Go(func() {
				if err := e.s.EvaluateRollout(context.Background()); err != nil {
					t.Errorf("EvaluateRollout: %v", err)
				}
			})
		}
		wg.Wait()
	}
	var staging []rolloutHost
	for n := range 10 {
		staging = append(staging, newRolloutHost(n, stagingToken))
	}
	for _, h := range staging {
		h.report(t, envs[h.n%2], "1.0.0", "", false)
	}
	evaluateBoth()
	canaries, others := splitCanaries(t, envs[1].groupState(t, "staging"), staging)
	for i, e := range envs {
		if s := canaries[i].find(t, e, "staging"); s.AgentVersion != "2.0.0" || !s.AgentAutoUpdate {
			t.Errorf("proxy %d: canary answer %+v; want 2.0.0", i, s)
		}
		if s := others[i].find(t, e, "staging"); s.AgentVersion != "1.0.0" || s.AgentAutoUpdate {
			t.Errorf("proxy %d: non-canary answer %+v; want 1.0.0 held", i, s)
		}
	}
	tick(time.Minute)
	canaries[0].report(t, envs[0], "2.0.0", "2.0.0", true)
	canaries[1].report(t, envs[1], "1.0.0", "2.0.0", false)
	evaluateBoth()
	if g := envs[0].groupState(t, "staging"); g.State != rollout.Halted {
		t.Fatalf("staging after a failed canary: %+v", g)
	}
	if code, _, body := envs[1].do(t, "POST", RolloutPath+"/staging/resume", strings.NewReader(`{"reason":"fixed"}`), bearer(adminToken)); code != 200 {
		t.Fatalf("resume at proxy 1: %d %s", code, body)
	}
	evaluateBoth()
	for i, e := range envs {
		if s := others[0].find(t, e, "staging"); s.AgentVersion != "2.0.0" || !s.AgentAutoUpdate {
			t.Errorf("proxy %d: active group answer %+v; want 2.0.0", i, s)
		}
	}
	tick(time.Minute)
	for _, h := range staging {
		if h.n != canaries[1].n {
			h.report(t, envs[(h.n+1)%2], "2.0.0", "2.0.0", true)
		}
	}
	evaluateBoth()
	evaluateBoth()
	want := "staging:unstarted>canary:proxy staging:canary>halted:proxy staging:halted>active:operator staging:active>done:proxy"
	for i, e := range envs {
		if g := e.groupState(t, "staging"); g.State != rollout.Done {
			t.Errorf("proxy %d: staging with 9 of 10 at the target: %+v", i, g)
		}
		hist := e.rolloutStatus(t).History
		var got []string
		for j := len(hist) - 1; j >= 0; j-- {
			if hist[j].Group == "staging" {
				got = append(got, fmt.Sprintf("%s:%s>%s:%s", hist[j].Group, hist[j].From, hist[j].To, hist[j].Actor))
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("proxy %d: history (each transition once):\n got %s\nwant %s", i, strings.Join(got, " "), want)
		}
	}
}

// TestRolloutMigratedToPostgres starts a rollout at a proxy on SQLite (the
// group in canary, its canaries picked), copies the SQLite database into
// PostgreSQL with CopyToPostgres, and lets a proxy on PostgreSQL carry on:
// it serves the same canaries the target, and moves the group to active
// and done from the copied state, after the copied history.
func TestRolloutMigratedToPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "census.db")
	openProxy := func(db string, start time.Time) *testEnv {
		st, err := store.Open(ctx, db, store.Options{ReportBurst: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		e := newEnv(t, func(c *Config) {
			c.Tokens, c.Census, c.Rollout = testTokens(), st, st
		})
		e.clock.Add(start.Sub(e.clock.Now()))
		writeFileAtomic(t, e.policy, rolloutPolicy)
		if err := e.s.Reload(); err != nil {
			t.Fatal(err)
		}
		return e
	}
	lite := openProxy(path, sundayInStaging)
	staging := reportStaging(t, lite, 10)
	lite.evaluate(t)
	before := lite.groupState(t, "staging")
	if before.State != rollout.Canary || len(before.Canaries) != 2 {
		t.Fatalf("staging at the SQLite proxy: %+v", before)
	}
	dbURL := pgtest.Database(t)
	res, err := store.CopyToPostgres(ctx, path, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Hosts != 10 || res.RolloutGroups != 1 || res.RolloutHistory != 1 {
		t.Errorf("copied %+v; want 10 hosts, 1 rollout group, 1 transition", res)
	}
	pg := openProxy(dbURL, sundayInStaging.Add(time.Minute))
	pg.evaluate(t) // a starting proxy evaluates first and serves from what it read
	if g := pg.groupState(t, "staging"); g.State != rollout.Canary || fmt.Sprint(g.Canaries) != fmt.Sprint(before.Canaries) {
		t.Fatalf("staging at the PostgreSQL proxy: %+v; want canary with %v", g, before.Canaries)
	}
	isCanary := map[string]bool{before.Canaries[0].UpdaterID: true, before.Canaries[1].UpdaterID: true}
	for _, h := range staging {
		want := map[bool]string{true: "2.0.0", false: "1.0.0"}[isCanary[h.updaterID]]
		if s := h.find(t, pg, "staging"); s.AgentVersion != want {
			t.Errorf("host %d at the PostgreSQL proxy: %+v; want %s", h.n, s, want)
		}
		if isCanary[h.updaterID] {
			h.report(t, pg, "2.0.0", "2.0.0", true)
		}
	}
	pg.evaluate(t)
	if g := pg.groupState(t, "staging"); g.State != rollout.Active {
		t.Fatalf("staging after its canaries succeeded: %+v", g)
	}
	pg.clock.Add(time.Minute)
	for _, h := range staging {
		h.report(t, pg, "2.0.0", "2.0.0", true)
	}
	pg.evaluate(t)
	hist := pg.rolloutStatus(t).History
	var got []string
	for j := len(hist) - 1; j >= 0; j-- {
		if hist[j].Group == "staging" {
			got = append(got, fmt.Sprintf("%s>%s", hist[j].From, hist[j].To))
		}
	}
	if want := "unstarted>canary canary>active active>done"; strings.Join(got, " ") != want {
		t.Errorf("history at the PostgreSQL proxy:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

// TestRolloutPostgresOutage stops PostgreSQL while a group is in canary
// and its canaries' success waits to be acted on: the proxy keeps serving
// find from the state it last read, its evaluations fail without a
// transition, /readyz says not ready, and once the database is back the
// proxy's own evaluation loop makes the pending transition, once.
// The proxy's clock follows the real one here: readiness compares it with
// the store's real-time record of the failing pings.
func TestRolloutPostgresOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, dbURL := pgtest.FreshDatabase(t)
	st, err := store.Open(ctx, dbURL, store.Options{ReportBurst: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, func(c *Config) {
		c.Tokens, c.Census, c.Rollout, c.CensusHealth = testTokens(), st, st, st.WriteFailure
		c.RolloutEvery = 100 * time.Millisecond
	})
	e.clock.Set(time.Now())
	writeFileAtomic(t, e.policy, strings.Replace(rolloutPolicy, "schedule: regular", "schedule: immediate", 1))
	if err := e.s.Reload(); err != nil {
		t.Fatal(err)
	}
	staging := reportStaging(t, e, 10)
	e.evaluate(t)
	g := e.groupState(t, "staging")
	if g.State != rollout.Canary || len(g.Canaries) != 2 {
		t.Fatalf("staging: %+v", g)
	}
	isCanary := map[string]bool{g.Canaries[0].UpdaterID: true, g.Canaries[1].UpdaterID: true}
	want := map[bool]string{true: "2.0.0", false: "1.0.0"}
	e.clock.Add(time.Second)
	for _, h := range staging {
		if isCanary[h.updaterID] {
			h.report(t, e, "2.0.0", "2.0.0", true)
		}
	}
	if err := srv.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.s.EvaluateRollout(ctx); err == nil {
		t.Fatal("EvaluateRollout without the database succeeded")
	}
	for _, h := range staging {
		if s := h.find(t, e, "staging"); s.AgentVersion != want[isCanary[h.updaterID]] {
			t.Errorf("host %d without the database: %+v; want %s (the last state read: canary)", h.n, s, want[isCanary[h.updaterID]])
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := st.WriteFailure(); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the store did not notice the database was gone")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.clock.Set(time.Now().Add(CensusFailingFor + 5*time.Second))
	if code, _, body := e.do(t, "GET", ReadyPath, nil, nil); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz without the database: %d %s; want 503", code, body)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.s.RunRollout(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	time.Sleep(300 * time.Millisecond) // a few evaluations fail meanwhile
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		groups, err := st.RolloutGroups(ctx, "2.0.0")
		if err == nil && len(groups) == 1 && groups[0].State == rollout.Active {
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("staging after the database came back: %+v, %v; want active", groups, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		if _, err := st.WriteFailure(); err == nil {
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatal("the store did not notice the database was back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _, body := e.do(t, "GET", ReadyPath, nil, nil); code != http.StatusOK {
		t.Errorf("/readyz with the database back: %d %s", code, body)
	}
	stop()
	<-done
	for _, h := range staging {
		if s := h.find(t, e, "staging"); s.AgentVersion != "2.0.0" {
			t.Errorf("host %d once active: %+v; want 2.0.0", h.n, s)
		}
	}
	var got []string
	hist := e.rolloutStatus(t).History
	for j := len(hist) - 1; j >= 0; j-- {
		got = append(got, fmt.Sprintf("%s:%s>%s", hist[j].Group, hist[j].From, hist[j].To))
	}
	if strings.Join(got, " ") != "staging:unstarted>canary staging:canary>active" {
		t.Errorf("history (each transition once): %s", strings.Join(got, " "))
	}
}

// reportStaging makes n hosts of the staging group report 1.0.0 to e.
func reportStaging(t *testing.T, e *testEnv, n int) []rolloutHost {
	t.Helper()
	hosts := make([]rolloutHost, n)
	for i := range hosts {
		hosts[i] = newRolloutHost(i, stagingToken)
		hosts[i].report(t, e, "1.0.0", "", false)
	}
	return hosts
}
