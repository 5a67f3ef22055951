// Command census benchmarks census intake: reports from many distinct
// simulated hosts POSTed over loopback HTTPS to the real proxy handler
// (proxyapi with enrollment tokens) backed by the SQLite store with durable
// commits (WAL, synchronous=FULL).
//
// The proxy runs as a child process (this binary with -role proxy), so its
// peak RSS is measured alone. The run has three phases on fresh databases:
//
//  1. baseline: one transaction (one fsync) per report (store.IngestOneTx),
//     -baseline-hosts hosts, signed;
//  2. unsigned: group commit, -hosts hosts, unsigned reports (the proxy
//     started with CensusAllowUnsigned): the baseline of signing's cost;
//  3. batched: group commit (store.Ingest), -hosts hosts, every report
//     signed by its host's Ed25519 key (RFC 9421) and verified by the
//     proxy, then a second round from the same hosts;
//
// then it times the summary over all hosts, through GET
// /v1/webapi/census/summary and directly on the store. Reports are built
// and signed before each phase starts: the load generator shares the CPUs
// with the proxy, and signing is the agents' work, not the proxy's.
//
//	go run ./bench/census -hosts 100000 -concurrency 64
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/bench/internal/benchkit"
	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/httpsig"
	"github.com/gravitational/teleport-update/internal/proxyapi"
)

// Tokens the child proxy accepts (at least proxyapi.MinTokenLen long).
const (
	stagingToken    = "bench-staging-token-0123456789abcdef"
	productionToken = "bench-production-token-0123456789abcd"
	adminToken      = "bench-admin-token-0123456789abcdef012"
)

const policy = `kind: autoupdate_version
version: v1
spec:
  agents:
    target_version: 16.4.6
    mode: enabled
    schedule: regular
    jitter_seconds: 60
    groups:
      - name: staging
        window: "0 2 * * *"
        duration: 1h
      - name: production
        window: "0 4 * * Tue,Thu"
        duration: 2h
`

func main() {
	role := flag.String("role", "driver", "driver (runs the benchmark) or proxy (the child process)")
	dir := flag.String("dir", "", "directory for the databases (default: a new temporary directory)")
	hosts := flag.Int("hosts", 100_000, "distinct hosts reporting in the batched phase")
	baselineHosts := flag.Int("baseline-hosts", 5_000, "distinct hosts in the one-transaction-per-report phase")
	concurrency := flag.Int("concurrency", 64, "concurrent reporting connections")
	db := flag.String("db", "", "proxy role: database file")
	oneTx := flag.Bool("one-tx", false, "proxy role: one transaction per report")
	allowUnsigned := flag.Bool("allow-unsigned", false, "proxy role: accept unsigned reports")
	flag.StringVar(&cpuProfile, "proxy-cpuprofile", "", "write the batched proxy's CPU profile to this file")
	shared := flag.Bool("shared", false, "benchmark the census several proxies share: two proxies on one PostgreSQL against one proxy on SQLite")
	pace := flag.Float64("pace", pacedRate, "with -shared: reports/s of the paced (open-loop) phase")
	flag.Parse()
	var err error
	switch {
	case *role == "proxy":
		err = serveProxy(*db, *oneTx, *allowUnsigned)
	case *shared:
		err = driveShared(*dir, *hosts, *concurrency, *pace)
	default:
		err = drive(*dir, *hosts, *baselineHosts, *concurrency)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// cpuProfile is where the proxy child writes its CPU profile, if set.
var cpuProfile string

// oneTxBackend makes the proxy store each report in its own transaction.
type oneTxBackend struct{ *store.Store }

func (b oneTxBackend) Ingest(ctx context.Context, group string, r api.Report, id api.Identity, now time.Time) error {
	return b.IngestOneTx(ctx, group, r, id, now)
}

// serveProxy runs the proxy API over TLS on loopback, prints its address and
// certificate, and serves until stdin closes or SIGTERM.
func serveProxy(dbPath string, oneTx, allowUnsigned bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	policyDir := filepath.Dir(dbPath)
	if store.IsPostgresURL(dbPath) {
		d, err := os.MkdirTemp("", "census-bench-proxy-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		policyDir = d
	}
	policyFile := filepath.Join(policyDir, "autoupdate_version.yaml")
	if err := os.WriteFile(policyFile, []byte(policy), 0o644); err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// Round 1 follows round 0 within seconds with small -hosts: no limit
	// on how often one host reports.
	st, err := store.Open(ctx, dbPath, store.Options{ReportBurst: -1})
	if err != nil {
		return err
	}
	defer st.Close()
	var backend proxyapi.CensusBackend = st
	if oneTx {
		backend = oneTxBackend{st}
	}
	api, err := proxyapi.New(proxyapi.Config{
		PolicyFile: policyFile,
		Tokens: []proxyapi.Token{
			{Token: stagingToken, Group: "staging"},
			{Token: productionToken, Group: "production"},
			{Token: adminToken, Admin: true},
		},
		Census:              backend,
		CensusAllowUnsigned: allowUnsigned,
		Logger:              slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	srv := httptest.NewUnstartedServer(api.Handler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	fmt.Printf("ADDR %s\nCERT %s\n", strings.TrimPrefix(srv.URL, "https://"), hex.EncodeToString(cert))
	go func() { io.Copy(io.Discard, os.Stdin); stop() }()
	<-ctx.Done()
	stats := st.Stats()
	fmt.Fprintf(os.Stderr, "STATS batches=%d reports=%d refused=%d\n", stats.Batches, stats.Reports, stats.Refused)
	return nil
}

// proxy is a running child proxy.
type proxy struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	addr      string
	client    *http.Client
	tlsConfig *tls.Config
}

func startProxy(dbPath string, oneTx, allowUnsigned bool, concurrency int) (*proxy, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-role", "proxy", "-db", dbPath, "-one-tx=" + strconv.FormatBool(oneTx), "-allow-unsigned=" + strconv.FormatBool(allowUnsigned)}
	if cpuProfile != "" && !oneTx {
		args = append(args, "-proxy-cpuprofile", cpuProfile)
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proxy{cmd: cmd, stdin: stdin}
	sc := bufio.NewScanner(out)
	var certPEM []byte
	for p.addr == "" || certPEM == nil {
		if !sc.Scan() {
			p.stop()
			return nil, errors.New("proxy child exited before printing its address")
		}
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "ADDR":
			p.addr = v
		case "CERT":
			if certPEM, err = hex.DecodeString(v); err != nil {
				p.stop()
				return nil, err
			}
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		p.stop()
		return nil, errors.New("proxy certificate is not PEM")
	}
	p.tlsConfig = &tls.Config{RootCAs: pool}
	p.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig:     p.tlsConfig,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
	}}
	return p, nil
}

// cpuSeconds returns the child's user+system CPU time so far.
func (p *proxy) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// Fields after the command name in parentheses; utime and stime are the
	// 14th and 15th fields, in clock ticks (100 per second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100
}

// selfCPUSeconds returns this process's user+system CPU time so far.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// peakRSS returns the child's peak and current resident set, in MiB.
func (p *proxy) peakRSS() (peak, current float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1, -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmHWM:":
			peak = kb / 1024
		case "VmRSS:":
			current = kb / 1024
		}
	}
	return peak, current
}

func (p *proxy) stop() {
	p.stdin.Close()
	p.cmd.Wait()
}

// hostReport returns the report of simulated host i, varied like a fleet.
// Round 0 is a host's first report; in round 1 every host has updated to
// 16.5.0 since, so its report changes version and summary counts and adds a
// result to its stored history.
func hostReport(i, round int, now time.Time) ([]byte, string) {
	sum := sha256.Sum256([]byte("bench host " + strconv.Itoa(i)))
	versions := []string{"16.4.6", "16.4.5", "16.4.3", "15.4.22"}
	oses := []string{"Ubuntu 22.04", "Debian GNU/Linux 12", "Red Hat Enterprise Linux 9.4", "Amazon Linux 2023", "Alpine Linux 3.20.3"}
	clouds := []string{"", "aws", "gcp", "azure"}
	methods := [][]string{{"systemctl", "teleport-update"}, {"node_script", "systemctl", "teleport-update"}, {"dockerfile", "teleport-update"}}
	r := api.Report{
		HostID:           hex.EncodeToString(sum[:]),
		Version:          versions[i%len(versions)],
		Services:         []string{"node"},
		OS:               "linux",
		OSVersion:        oses[i%len(oses)],
		HostArchitecture: []string{"amd64", "arm64"}[i%2],
		GlibcVersion:     "2.36",
		InstallMethods:   methods[i%len(methods)],
		CloudEnvironment: clouds[i%len(clouds)],
		UpdateGroup:      "staging",
		UpdaterStatus:    api.StatusEnabled,
		ReportedAt:       now,
	}
	if round > 0 {
		r.Version = "16.5.0"
		r.LastUpdateResult = &api.UpdateResult{Time: now.Add(-time.Minute), Target: r.Version, Success: true}
	}
	if i%len(methods) == 2 {
		r.ContainerRuntime = "docker"
		r.GlibcVersion = ""
	}
	if i%7 != 0 && round == 0 {
		r.LastUpdateResult = &api.UpdateResult{Time: now.Add(-time.Hour), Target: r.Version, Success: i%50 != 0}
		if !r.LastUpdateResult.Success {
			r.LastUpdateResult.ErrorCode = "health_check"
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	token := stagingToken
	if i%3 == 0 {
		token = productionToken
	}
	return b, token
}

// phaseResult is what one intake phase measured.
type phaseResult struct {
	hosts      int
	elapsed    time.Duration
	rate       float64 // reports/s over the whole phase
	minWindow  float64 // lowest reports/s over any tenth of the phase
	peakRSS    float64 // MiB
	currentRSS float64
	proxyCPU   float64 // CPU seconds the proxy used during the phase
	driverCPU  float64 // CPU seconds the load generator used
	// Latencies of the reports (from when each was due, when paced).
	p50, p99, maxLatency time.Duration
}

// hostKey is simulated host i's signing key.
func hostKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("bench host key " + strconv.Itoa(i)))
	return ed25519.NewKeyFromSeed(seed[:])
}

// signedHeaders signs body as host i would send it to addr, or returns
// nil when unsigned.
func signedHeaders(addr string, i int, body []byte, signed bool) http.Header {
	if !signed {
		return nil
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+api.CensusPath, nil)
	if err := httpsig.Sign(req, body, hostKey(i), time.Now()); err != nil {
		panic(err)
	}
	return req.Header
}

// load is what one intake phase sends.
type load struct {
	hosts   int     // reports, one per host
	first   int     // the first host's number: hosts first to first+hosts-1
	round   int     // see hostReport
	workers int     // connections to each proxy
	signed  bool    // signed by each host's key, or not
	pace    float64 // reports/s; 0: as fast as the workers get answers
}

// intake posts the round's reports of hosts l.first to l.first+l.hosts-1
// with l.workers workers, report j to proxy j mod len(ps). With pace 0
// the workers send back to back (a closed loop: each worker's next report
// waits for the answer to its last). With pace > 0 report j is due at
// j/pace seconds after the start, as agents on other machines would send
// it whether or not the proxy is keeping up (an open loop), and its
// latency counts from when it was due.
func intake(ps []*proxy, l load) (phaseResult, error) {
	n, concurrency, pace := l.hosts, l.workers, l.pace
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	// Build every report first: the load generator shares the CPUs with the
	// proxy, and marshaling is not what is measured.
	now := time.Now().UTC().Truncate(time.Millisecond)
	reqs := make([][]byte, n)
	for i := range n {
		body, token := hostReport(l.first+i, l.round, now)
		addr := ps[i%len(ps)].addr
		reqs[i] = wireRequest(addr, token, body, signedHeaders(addr, l.first+i, body, l.signed))
	}
	windows := 10
	windowStart := make([]time.Time, windows+1)
	latency := make([]time.Duration, n)
	work := make(chan int, n)
	conns := make([][]wireConn, concurrency)
	if err := dialAll(ps, conns); err != nil {
		return phaseResult{}, err
	}
	proxyCPU0, driverCPU0 := proxiesCPU(ps), selfCPUSeconds()
	start := time.Now()
	windowStart[0] = start
	due := func(i int) time.Time { return start.Add(time.Duration(float64(i) / pace * float64(time.Second))) }
	if pace > 0 {
		go dispatch(work, n, due)
	} else {
		for i := range n {
			work <- i
		}
		close(work)
	}
	var wmu sync.Mutex
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			defer closeAll(conns[w])
			for i := range work {
				from := time.Now()
				if pace > 0 {
					from = due(i)
				}
				status, err := conns[w][i%len(ps)].send(ps[i%len(ps)], reqs[i])
				if err == nil && status != http.StatusAccepted {
					err = fmt.Errorf("host %d: proxy answered %d %s", l.first+i, status, http.StatusText(status))
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				latency[i] = time.Since(from)
				d := int(done.Add(1))
				if w := d * windows / n; d*windows%n == 0 && w <= windows {
					wmu.Lock()
					windowStart[w] = time.Now()
					wmu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return phaseResult{}, firstErr
	}
	res := phaseResult{hosts: n, elapsed: elapsed, rate: float64(n) / elapsed.Seconds(),
		proxyCPU: proxiesCPU(ps) - proxyCPU0, driverCPU: selfCPUSeconds() - driverCPU0}
	slices.Sort(latency)
	res.p50, res.p99, res.maxLatency = latency[n/2], latency[n*99/100], latency[n-1]
	for w := range windows {
		if windowStart[w].IsZero() || windowStart[w+1].IsZero() {
			continue
		}
		r := float64(n/windows) / windowStart[w+1].Sub(windowStart[w]).Seconds()
		if res.minWindow == 0 || r < res.minWindow {
			res.minWindow = r
		}
	}
	for _, p := range ps {
		peak, current := p.peakRSS()
		res.peakRSS, res.currentRSS = max(res.peakRSS, peak), max(res.currentRSS, current)
	}
	return res, nil
}

// dispatch hands report i to the workers when it is due, then closes work.
func dispatch(work chan<- int, n int, due func(int) time.Time) {
	for i := range n {
		if d := time.Until(due(i)); d > 0 {
			time.Sleep(d)
		}
		work <- i
	}
	close(work)
}

// dialAll opens each worker's connection to each proxy before the clock
// starts, so that no TLS handshake is timed.
func dialAll(ps []*proxy, conns [][]wireConn) error {
	for w := range conns {
		conns[w] = make([]wireConn, len(ps))
		for j, p := range ps {
			if err := conns[w][j].dial(p); err != nil {
				for _, c := range conns[:w+1] {
					closeAll(c)
				}
				return err
			}
		}
	}
	return nil
}

// proxiesCPU returns the CPU time the proxies used so far.
func proxiesCPU(ps []*proxy) float64 {
	total := 0.0
	for _, p := range ps {
		total += p.cpuSeconds()
	}
	return total
}

// timeSummaryHTTP times GET /v1/webapi/census/summary (median of runs).
func timeSummaryHTTP(p *proxy, runs int) (time.Duration, int, error) {
	var times []time.Duration
	total := 0
	for range runs {
		req, _ := http.NewRequest(http.MethodGet, "https://"+p.addr+api.CensusSummaryPath, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		start := time.Now()
		resp, err := p.client.Do(req)
		if err != nil {
			return 0, 0, err
		}
		var sum api.Summary
		err = json.NewDecoder(resp.Body).Decode(&sum)
		resp.Body.Close()
		times = append(times, time.Since(start))
		if err != nil || resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("summary: %s: %v", resp.Status, err)
		}
		total = sum.TotalHosts
	}
	return benchkit.Median(times), total, nil
}

// loadAvg returns the 1-minute load average, a hint of how contended the
// machine was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func drive(dir string, hosts, baselineHosts, concurrency int) error {
	dir, cleanup, err := benchkit.WorkDir(dir, "census-bench-")
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Printf("census intake benchmark: %d hosts batched, %d hosts one-tx baseline, %d connections, GOMAXPROCS=%d, %d CPUs\n",
		hosts, baselineHosts, concurrency, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("databases in %s (WAL, synchronous=FULL)\n\n", dir)

	start := func(name string, oneTx, allowUnsigned bool) (*proxy, error) {
		sub := filepath.Join(dir, name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, err
		}
		return startProxy(filepath.Join(sub, "census.db"), oneTx, allowUnsigned, concurrency)
	}
	phase := func(p *proxy, name string, l load) (phaseResult, error) {
		if l.workers == 0 {
			l.workers = concurrency
		}
		n := l.hosts
		res, err := intake([]*proxy{p}, l)
		if err != nil {
			return res, err
		}
		fmt.Printf("%-9s %7d reports in %8.2fs: %8.0f reports/s (slowest tenth %8.0f/s), proxy peak RSS %6.1f MiB\n"+
			"%-9s latency p50 %v p99 %v max %v\n",
			name, n, res.elapsed.Seconds(), res.rate, res.minWindow, res.peakRSS, "",
			res.p50.Round(100*time.Microsecond), res.p99.Round(100*time.Microsecond), res.maxLatency.Round(time.Millisecond))
		fmt.Printf("%-9s CPU: proxy %.1fs (%.0f µs/report, %.0f reports per proxy CPU-second), load generator %.1fs; machine load %s\n",
			"", res.proxyCPU, res.proxyCPU/float64(n)*1e6, float64(n)/res.proxyCPU, res.driverCPU, loadAvg())
		return res, nil
	}
	bp, err := start("one-tx", true, false)
	if err != nil {
		return err
	}
	base, err := phase(bp, "one-tx", load{hosts: baselineHosts, signed: true})
	bp.stop()
	if err != nil {
		return err
	}
	up, err := start("unsigned", false, true)
	if err != nil {
		return err
	}
	unsignedRes, err := phase(up, "unsigned", load{hosts: hosts})
	up.stop()
	if err != nil {
		return err
	}
	// The batched proxy takes every host's first report (new rows), then a
	// second round from the same hosts (updates in place, history merged).
	p, err := start("batched", false, false)
	if err != nil {
		return err
	}
	batched, err := phase(p, "batched", load{hosts: hosts, signed: true})
	var again, paced phaseResult
	if err == nil {
		again, err = phase(p, "again", load{hosts: hosts, round: 1, signed: true})
	}
	// The closed loop measures how fast 64 agents that each wait for their
	// answer report. A fleet's agents do not wait for each other: as many
	// new hosts again, due at 5,000 reports/s.
	if err == nil {
		paced, err = phase(p, "paced", load{hosts: hosts, first: hosts, signed: true, workers: pacedWorkers, pace: pacedRate})
	}
	if err != nil {
		p.stop()
		return err
	}
	httpSummary, total, err := timeSummaryHTTP(p, 5)
	peak, _ := p.peakRSS()
	p.stop()
	if err != nil {
		return err
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, "batched", "census.db"), store.Options{})
	if err != nil {
		return err
	}
	var direct []time.Duration
	for range 5 {
		start := time.Now()
		if _, err := st.Summary(context.Background(), time.Now(), 24*time.Hour); err != nil {
			return err
		}
		direct = append(direct, time.Since(start))
	}
	st.Close()
	fmt.Printf("\nsummary over %d hosts: %v via GET %s (median of 5), %v on the store directly\n",
		total, httpSummary.Round(time.Millisecond), api.CensusSummaryPath, benchkit.Median(direct).Round(time.Millisecond))
	fmt.Printf("proxy peak RSS over the batched run and summaries: %.1f MiB\n", peak)
	fmt.Printf("batched / one-tx-per-report throughput: %.1fx\n", batched.rate/base.rate)
	fmt.Printf("signed / unsigned batched throughput: %.2fx (first reports), signed %.0f and %.0f reports/s with %d agents waiting for their answers\n",
		batched.rate/unsignedRes.rate, batched.rate, again.rate, concurrency)
	fmt.Printf("paced at %.0f reports/s of new hosts (goal >= 5000): took %.0f reports/s, %.3f of the pace, p99 latency %v\n",
		pacedRate, paced.rate, paced.rate/pacedRate, paced.p99.Round(100*time.Microsecond))
	return nil
}
