package proxyapi

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

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
