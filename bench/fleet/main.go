// Command fleet plays a fleet of agents (goroutines with their own timers
// and jitter, loopback only) against one proxy (the real proxyapi handler)
// and one CDN through a maintenance window compressed in time, and reports
// proxy requests/s and p99, the peak number of concurrent downloads, and
// how that peak compares with the jitter-free herd and the theory N·d/J.
//
//	go run ./bench/fleet -agents 10000
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

func main() {
	var o options
	flag.IntVar(&o.agents, "agents", 10000, "number of simulated agents")
	flag.Float64Var(&o.scale, "scale", 20, "virtual seconds per real second (20: one hour in three minutes)")
	flag.DurationVar(&o.interval, "interval", 5*time.Minute, "timer interval (virtual time)")
	flag.IntVar(&o.jitterSeconds, "jitter", 900, "jitter_seconds in the policy (virtual time)")
	flag.DurationVar(&o.download, "download", time.Second, "duration of one download (real time; the CDN paces it)")
	flag.Parse()
	// Every simulated agent holds connections to the in-process proxy and
	// CDN, and each connection costs two descriptors here.
	raiseFileLimit(1 << 18)
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

type options struct {
	agents        int
	scale         float64
	interval      time.Duration
	jitterSeconds int
	download      time.Duration
}

type result struct {
	name         string
	requests     int64
	failures     int64
	duration     time.Duration
	p99          time.Duration
	peak         int64
	updated      int64
	theory       float64
	realJitter   time.Duration
	realCadence  time.Duration
	meanDownload time.Duration
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "fleet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("Fleet simulation: %d agents, timer every %s, jitter %ds, one download = %s real, time x%.0f, GOMAXPROCS=%d\n\n",
		o.agents, o.interval, o.jitterSeconds, o.download, o.scale, runtime.GOMAXPROCS(0))
	var results []result
	for _, jitter := range []int{o.jitterSeconds, 0} {
		r, err := simulate(o, dir, jitter)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	fmt.Printf("%-22s %9s %9s %9s %8s %8s %8s %10s %8s %s\n", "scenario", "requests", "req/s", "p99", "failed", "updated", "mean d", "peak dl", "N·d/J", "peak/theory")
	for _, r := range results {
		ratio := "-"
		theory := "-"
		if r.theory > 0 {
			theory = fmt.Sprintf("%.0f", r.theory)
			ratio = fmt.Sprintf("%.2f", float64(r.peak)/r.theory)
		}
		fmt.Printf("%-22s %9d %9.0f %9s %8d %8d %8s %10d %8s %s\n", r.name, r.requests, float64(r.requests)/r.duration.Seconds(),
			r.p99.Round(10*time.Microsecond), r.failures, r.updated, r.meanDownload.Round(time.Millisecond), r.peak, theory, ratio)
	}
	if len(results) == 2 && results[0].peak > 0 {
		fmt.Printf("\nJitter cuts the download peak %.1fx against the jitter-free herd (%d → %d concurrent downloads).\n",
			float64(results[1].peak)/float64(results[0].peak), results[1].peak, results[0].peak)
	}
	// The jitter-free herd is the counter-example and may overload the
	// machine; the jittered fleet must not lose a single request.
	if r := results[0]; r.failures > 0 {
		return fmt.Errorf("%s: %d failed requests", r.name, r.failures)
	}
	return nil
}

func simulate(o options, dir string, jitterSeconds int) (result, error) {
	name := fmt.Sprintf("jitter %ds", jitterSeconds)
	if jitterSeconds == 0 {
		name = "jitter-free herd"
	}
	res := result{name: name}
	scale := o.scale
	realJitter := time.Duration(float64(jitterSeconds) * float64(time.Second) / scale)
	realInterval := time.Duration(float64(o.interval) / scale)
	res.realJitter, res.realCadence = realJitter, realInterval

	// The proxy's clock runs scale times faster, starting just before a
	// one-hour window opens at 02:00 UTC.
	vStart := time.Date(2026, 11, 22, 1, 59, 50, 0, time.UTC)
	realStart := time.Now()
	vnow := func() time.Time {
		return vStart.Add(time.Duration(float64(time.Since(realStart)) * scale))
	}
	policy := filepath.Join(dir, fmt.Sprintf("policy-%d.yaml", jitterSeconds))
	doc := fixture.Policy{Version: "2.0.0", Schedule: "regular", JitterSeconds: jitterSeconds,
		Group: "fleet", Window: "0 2 * * *", Duration: time.Hour}.YAML()
	if err := os.WriteFile(policy, doc, 0o644); err != nil {
		return res, err
	}
	api, err := proxyapi.New(proxyapi.Config{PolicyFile: policy, Now: vnow, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return res, err
	}
	var requests atomic.Int64
	h := api.Handler()
	proxy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	proxy.Config.ErrorLog = log.New(io.Discard, "", 0)
	proxy.StartTLS()
	defer proxy.Close()

	// The CDN paces each tarball download over o.download and counts how
	// many run at once.
	keyDir := filepath.Join(dir, fmt.Sprintf("key-%d", jitterSeconds))
	os.Mkdir(keyDir, 0o700)
	privPath, _, err := release.GenerateKey(keyDir)
	if err != nil {
		return res, err
	}
	key, err := release.LoadPrivateKey(privPath)
	if err != nil {
		return res, err
	}
	cdn := fixture.NewCDN()
	defer cdn.Close()
	data, err := releasetest.ScriptRelease("2.0.0", false)
	if err != nil {
		return res, err
	}
	art := download.Artifact{Product: "teleport", OS: "linux", Arch: "amd64"}
	art.Version, _ = download.ParseVersion("2.0.0")
	if err := cdn.Publish(key, keyDir, art.TarballName(), data); err != nil {
		return res, err
	}
	var active, peak atomic.Int64
	paced := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := active.Add(1)
		defer active.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		const chunks = 10
		body := cdn.Get(art.TarballName())
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		step := (len(body) + chunks - 1) / chunks
		for i := 0; i < len(body); i += step {
			time.Sleep(o.download / chunks)
			w.Write(body[i:min(i+step, len(body))])
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
	}))
	paced.Config.ErrorLog = log.New(io.Discard, "", 0)
	paced.StartTLS()
	defer paced.Close()

	pool := x509.NewCertPool()
	pool.AddCert(proxy.Certificate())
	pool.AddCert(paced.Certificate())
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     time.Minute,
	}
	client := download.New(download.Options{HTTPClient: &http.Client{Transport: transport}})
	proxyAddr := proxy.Listener.Addr().String()
	tarURL := paced.URL + "/" + art.TarballName()

	var failures, updated, dlNanos atomic.Int64
	var latMu sync.Mutex
	var latencies []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < o.agents; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each agent's timer fires at its own phase.
			timer := time.NewTimer(rand.N(realInterval))
			defer timer.Stop()
			var mine []time.Duration
			defer func() {
				latMu.Lock()
				latencies = append(latencies, mine...)
				latMu.Unlock()
			}()
			for {
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
				timer.Reset(realInterval)
				t0 := time.Now()
				pol, err := updater.Find(ctx, client, proxyAddr, "fleet", "")
				mine = append(mine, time.Since(t0))
				if err != nil {
					if ctx.Err() == nil {
						if failures.Add(1) <= 3 {
							fmt.Fprintln(os.Stderr, "find failed:", err)
						}
					}
					continue
				}
				if !pol.AutoUpdate {
					continue
				}
				// The agent sleeps its own jitter, scaled to real time.
				if pol.Jitter > 0 {
					d := time.Duration(float64(rand.N(pol.Jitter)) / scale)
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
				f, err := os.CreateTemp(dir, "dl-")
				if err != nil {
					failures.Add(1)
					return
				}
				dlStart := time.Now()
				_, err = client.Download(ctx, tarURL, f, 1<<20, nil)
				dlNanos.Add(int64(time.Since(dlStart)))
				f.Close()
				os.Remove(f.Name())
				if err != nil {
					if ctx.Err() == nil {
						if failures.Add(1) <= 3 {
							fmt.Fprintln(os.Stderr, "download failed:", err)
						}
					}
					continue
				}
				updated.Add(1)
				return
			}
		}()
	}
	// Run until every agent updated (or the window would have closed).
	deadline := time.Now().Add(time.Duration(float64(time.Hour)/scale) + realInterval)
	for time.Now().Before(deadline) && updated.Load()+failures.Load() < int64(o.agents) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	res.duration = time.Since(realStart)
	res.requests = requests.Load()
	res.failures = failures.Load()
	res.updated = updated.Load()
	res.peak = peak.Load()
	// The theory uses the measured mean download time d (the CDN's pacing
	// plus TLS and scheduling), N·d/J.
	if res.updated > 0 {
		res.meanDownload = time.Duration(dlNanos.Load() / res.updated)
	}
	if realJitter > 0 {
		res.theory = float64(o.agents) * res.meanDownload.Seconds() / realJitter.Seconds()
	}
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		res.p99 = latencies[n*99/100]
	}
	return res, nil
}

// raiseFileLimit lifts RLIMIT_NOFILE to n when allowed (root may raise the
// hard limit too); otherwise it keeps what it has.
func raiseFileLimit(n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= n {
		return
	}
	want := syscall.Rlimit{Cur: n, Max: max(n, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
