package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/bench/internal/benchkit"
	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/pgtest"
	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// The paced phases: pacedRate reports/s (the intake goal), sent on
// pacedWorkers connections to each proxy, enough for that rate at 50 ms
// per report.
const (
	pacedRate    = 5000.0
	pacedWorkers = 256
)

// driveShared measures the census several proxies share: signed intake
// through two proxies on one PostgreSQL (Debian's, a throwaway cluster
// with its default durability: fsync on, synchronous_commit on), against
// the same reports through one proxy on SQLite in the same run, then the
// summary over all hosts on PostgreSQL. The proxies, PostgreSQL and this
// load generator share the machine's CPUs.
func driveShared(dir string, hosts, concurrency int, pace float64) error {
	dir, cleanup, err := benchkit.WorkDir(dir, "census-bench-")
	if err != nil {
		return err
	}
	defer cleanup()
	ctx := context.Background()
	srv, err := pgtest.Start(ctx)
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	defer srv.Stop()
	name, err := srv.CreateDatabase(ctx)
	if err != nil {
		return err
	}
	// The children find the password in the environment, not in argv.
	os.Setenv("PGPASSWORD", srv.Password())
	dbURL := strings.Replace(srv.URL(name), ":"+srv.Password()+"@", "@", 1)
	fmt.Printf("shared census benchmark: %d hosts, signed reports, %d connections, GOMAXPROCS=%d, %d CPUs;\n"+
		"proxies, PostgreSQL and the load generator share the CPUs\n\n", hosts, concurrency, runtime.GOMAXPROCS(0), runtime.NumCPU())
	phase := func(name string, ps []*proxy, l load) (phaseResult, error) {
		db0 := postgresCPUSeconds()
		l.hosts, l.signed, l.workers = hosts, true, concurrency
		if l.pace > 0 {
			l.workers = pacedWorkers
		}
		res, err := intake(ps, l)
		if err != nil {
			return res, fmt.Errorf("%s: %w", name, err)
		}
		perReport := func(seconds float64) float64 { return seconds / float64(hosts) * 1e6 }
		fmt.Printf("%-22s %7d reports in %7.2fs: %7.0f reports/s (slowest tenth %7.0f/s), latency p50 %v p99 %v max %v\n"+
			"          CPU per report: proxies %.0f µs, PostgreSQL %.0f µs, load generator %.0f µs; machine load %s\n",
			name, hosts, res.elapsed.Seconds(), res.rate, res.minWindow, res.p50.Round(100*time.Microsecond),
			res.p99.Round(100*time.Microsecond), res.maxLatency.Round(time.Millisecond), perReport(res.proxyCPU),
			perReport(postgresCPUSeconds()-db0), perReport(res.driverCPU), loadAvg())
		return res, nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "sqlite"), 0o755); err != nil {
		return err
	}
	sp, err := startProxy(filepath.Join(dir, "sqlite", "census.db"), false, false, concurrency)
	if err != nil {
		return err
	}
	lite, err := phase("sqlite, 1 proxy", []*proxy{sp}, load{})
	sp.stop()
	if err != nil {
		return err
	}
	var ps []*proxy
	for range 2 {
		p, err := startProxy(dbURL, false, false, concurrency)
		if err != nil {
			return err
		}
		defer p.stop()
		ps = append(ps, p)
	}
	pg, err := phase("postgres, 2 proxies", ps, load{})
	if err != nil {
		return err
	}
	again, err := phase("postgres, 2 proxies, again", ps, load{round: 1})
	if err != nil {
		return err
	}
	httpSummary, total, err := timeSummaryHTTP(ps[0], 5)
	if err != nil {
		return err
	}
	st, err := store.OpenReadOnly(ctx, dbURL, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	var direct []time.Duration
	for range 5 {
		start := time.Now()
		if _, err := st.Summary(ctx, time.Now(), 24*time.Hour); err != nil {
			return err
		}
		direct = append(direct, time.Since(start))
	}
	// The rollout's evaluation reads the per-group counts of the hosts
	// seen recently (RolloutCounts), one query over every host; the rest
	// of it is a few rows.
	var counts []time.Duration
	for range 5 {
		start := time.Now()
		if _, err := st.RolloutCounts(ctx, "16.5.0", time.Now().Add(-time.Hour)); err != nil {
			return err
		}
		counts = append(counts, time.Since(start))
	}
	pgEval, err := timeEvaluation(ctx, dbURL, dir)
	if err != nil {
		return fmt.Errorf("rollout evaluation on PostgreSQL: %w", err)
	}
	liteEval, err := timeEvaluation(ctx, filepath.Join(dir, "sqlite", "census.db"), dir)
	if err != nil {
		return fmt.Errorf("rollout evaluation on SQLite: %w", err)
	}
	// The closed loop above measures how fast 64 agents that each wait for
	// their answer can report. A fleet's agents do not wait for each other:
	// as many new hosts again, due at pace reports/s; the proxies must keep
	// up, with bounded latency. Timed after the summaries, which are over
	// -hosts hosts.
	paced, err := phase(fmt.Sprintf("postgres, paced %.0f/s", pace), ps, load{first: hosts, pace: pace})
	if err != nil {
		return err
	}
	fmt.Printf("\nsummary over %d hosts on PostgreSQL: %v via GET %s (median of 5), %v on the store directly (goal < 200ms)\n",
		total, httpSummary.Round(time.Millisecond), api.CensusSummaryPath, benchkit.Median(direct).Round(time.Millisecond))
	fmt.Printf("rollout evaluation's counts over %d hosts on PostgreSQL: %v (median of 5; goal < 100ms)\n",
		total, benchkit.Median(counts).Round(time.Millisecond))
	fmt.Printf("full rollout evaluation (EvaluateRollout, group active) over %d hosts: PostgreSQL %v, SQLite %v (medians of 5; "+
		"PostgreSQL / SQLite %.2fx; goal < 100ms on PostgreSQL)\n", total, pgEval.Round(time.Millisecond),
		liteEval.Round(time.Millisecond), float64(pgEval)/float64(liteEval))
	fmt.Printf("postgres (2 proxies) / sqlite (1 proxy) throughput: %.2fx; signed on PostgreSQL %.0f and %.0f reports/s with %d agents waiting for their answers\n",
		pg.rate/lite.rate, pg.rate, again.rate, concurrency)
	fmt.Printf("paced at %.0f reports/s of new hosts (goal >= 5000): took %.0f reports/s, %.3f of the pace, p99 latency %v\n",
		pace, paced.rate, paced.rate/pace, paced.p99.Round(100*time.Microsecond))
	return nil
}

// evalPolicy rolls every group out at once to a version no bench host
// runs, so that the staging group, where every bench host reports, starts
// at the first evaluation and stays active.
const evalPolicy = `kind: autoupdate_version
version: v1
spec:
  agents:
    target_version: 17.0.0
    start_version: 16.4.6
    mode: enabled
    schedule: immediate
    jitter_seconds: 60
    groups:
      - name: staging
        window: "0 2 * * *"
        duration: 1h
        canary_count: 0
      - name: production
        window: "0 4 * * *"
        duration: 1h
        canary_count: 0
`

// timeEvaluation times the proxy's whole rollout evaluation step
// (EvaluateRollout: the groups' states, the counts over every host, the
// transitions, the view find serves from) on the census at db, once the
// staging group is active: the median of 5.
func timeEvaluation(ctx context.Context, db, dir string) (time.Duration, error) {
	st, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	policyFile := filepath.Join(dir, "eval-policy.yaml")
	if err := os.WriteFile(policyFile, []byte(evalPolicy), 0o644); err != nil {
		return 0, err
	}
	s, err := proxyapi.New(proxyapi.Config{PolicyFile: policyFile, Census: st, Rollout: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	if err := s.EvaluateRollout(ctx); err != nil { // staging starts
		return 0, err
	}
	groups, err := st.RolloutGroups(ctx, "17.0.0")
	if err != nil {
		return 0, err
	}
	if len(groups) == 0 || groups[0].Name != "staging" || groups[0].State != rollout.Active {
		return 0, fmt.Errorf("staging did not start at the first evaluation: %+v", groups)
	}
	var took []time.Duration
	for range 5 {
		start := time.Now()
		if err := s.EvaluateRollout(ctx); err != nil {
			return 0, err
		}
		took = append(took, time.Since(start))
	}
	return benchkit.Median(took), nil
}

// postgresCPUSeconds is the CPU time the PostgreSQL server's processes
// used so far: the live ones, and those that ended (counted in their
// parent's children times).
func postgresCPUSeconds() float64 {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	total := 0.0
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "postgres" {
			continue
		}
		// After the command: utime, stime, cutime and cstime are fields
		// 12 to 15, in clock ticks (100 per second on Linux).
		f := strings.Fields(s[end+2:])
		if len(f) < 15 {
			continue
		}
		for _, v := range f[11:15] {
			t, _ := strconv.ParseFloat(v, 64)
			total += t / 100
		}
	}
	return total
}
