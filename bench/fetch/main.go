// Command fetch benchmarks the verified fetch pipeline (download.FetchVerified)
// against curl on a loopback HTTPS server:
//
//   - floor:  curl -sS --cacert CA -o OUT URL            (transfer and write alone)
//   - script: curl ... -o OUT URL && sha256sum OUT       (what a careful shell script does)
//   - ours:   FetchVerified in a separate process        (fetch .sha256 + bundle, verify, stream+hash, rename)
//
// It reports wall times (median and best of -reps interleaved runs), the
// ratios against the floor, and the peak RSS of our fetcher process for
// several artifact sizes. Everything it generates lives in a temporary
// directory that is removed at the end.
//
// Usage:
//
//	go run ./bench/fetch                       # 256 MiB timing, RSS for 64,256,512 MiB
//	go run ./bench/fetch -size 64 -rss-sizes 16,64 -reps 3
//
// Goals: ours ≤ 1.15× the floor, faster than the script, and peak
// RSS < 40 MiB and flat across sizes.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

const version = "16.4.6"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		if err := child(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "fetch child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/fetch:", err)
		os.Exit(1)
	}
}

// child is our fetcher as its own process, so its RSS is measured alone.
// It trusts the benchmark's CA through SSL_CERT_FILE, like production.
func child(args []string) error {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	base := fs.String("base", "", "base URL")
	pub := fs.String("pub", "", "public key PEM")
	staging := fs.String("staging", "", "staging dir")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pemBytes, err := os.ReadFile(*pub)
	if err != nil {
		return err
	}
	key, err := verify.ParsePublicKeyPEM(pemBytes, *pub)
	if err != nil {
		return err
	}
	a, err := download.NewArtifact(download.ProductTeleport, version, "linux", "amd64")
	if err != nil {
		return err
	}
	c := download.New(download.Options{})
	got, err := c.FetchVerified(context.Background(), *base, a, verify.NewKeySet(key), *staging, 0, time.Now(), nil)
	if err != nil {
		return err
	}
	fmt.Println(got.SHA256, got.Size)
	return nil
}

type config struct {
	size     int
	rssSizes []int
	reps     int
	dir      string
	http2    bool
}

func run() error {
	var cfg config
	var rss string
	flag.IntVar(&cfg.size, "size", 256, "artifact size in MiB for the timing comparison")
	flag.StringVar(&rss, "rss-sizes", "64,256,512", "artifact sizes in MiB for the peak-RSS runs (comma-separated, empty to skip)")
	flag.IntVar(&cfg.reps, "reps", 5, "interleaved repetitions of each timed command")
	flag.StringVar(&cfg.dir, "dir", "", "parent of the temporary work dir (default: $TMPDIR); put it on the filesystem you care about")
	flag.BoolVar(&cfg.http2, "http2", false, "let the server negotiate HTTP/2 (default HTTP/1.1 for all clients)")
	flag.Parse()
	for s := range strings.SplitSeq(rss, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return fmt.Errorf("bad -rss-sizes entry %q", s)
		}
		cfg.rssSizes = append(cfg.rssSizes, n)
	}
	for _, tool := range []string{"curl", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed for the baselines: %w", tool, err)
		}
	}

	work, err := os.MkdirTemp(cfg.dir, "bench-fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b, err := newBench(work, cfg.http2)
	if err != nil {
		return err
	}
	defer b.srv.Close()

	fmt.Printf("bench/fetch: loopback HTTPS (%s), %d CPUs, work dir %s\n", b.proto(), numCPU(), work)
	if err := b.timing(cfg.size, cfg.reps); err != nil {
		return err
	}
	if len(cfg.rssSizes) > 0 {
		if err := b.rss(cfg.rssSizes); err != nil {
			return err
		}
	}
	return nil
}

type bench struct {
	work    string
	caPath  string
	pubPath string
	key     *ecdsa.PrivateKey
	srv     *http.Server
	base    string
	http2   bool
}

func (b *bench) proto() string {
	if b.http2 {
		return "HTTP/2 allowed"
	}
	return "HTTP/1.1"
}

func newBench(work string, http2 bool) (*bench, error) {
	b := &bench{work: work, http2: http2}
	for _, d := range []string{"www", "out"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o700); err != nil {
			return nil, err
		}
	}
	privPath, pubPath, err := release.GenerateKey(filepath.Join(work, "keys"))
	if err != nil {
		return nil, err
	}
	b.pubPath = pubPath
	if b.key, err = release.LoadPrivateKey(privPath); err != nil {
		return nil, err
	}
	ca, err := fixture.NewCA("bench-fetch CA")
	if err != nil {
		return nil, err
	}
	serverTLS, err := ca.ServerConfig("bench-fetch")
	if err != nil {
		return nil, err
	}
	b.caPath = filepath.Join(work, "ca.pem")
	if err := os.WriteFile(b.caPath, ca.PEM, 0o644); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.base = "https://" + ln.Addr().String()
	b.srv = &http.Server{
		Handler:           http.FileServer(http.Dir(filepath.Join(work, "www"))),
		TLSConfig:         serverTLS,
		ReadHeaderTimeout: 10 * time.Second,
	}
	if !http2 {
		b.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	go b.srv.ServeTLS(ln, "", "")
	return b, nil
}

// publish writes a signed artifact of size MiB to the server's directory
// and returns its URL and a cleanup func.
func (b *bench) publish(sizeMiB int) (string, func(), error) {
	a, err := download.NewArtifact(download.ProductTeleport, version, "linux", "amd64")
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(b.work, "www", a.TarballName())
	f, err := os.Create(path)
	if err != nil {
		return "", nil, err
	}
	// Incompressible pseudo-random bytes, quickly.
	r := mrand.NewChaCha8([32]byte{1})
	if _, err := io.CopyN(f, r, int64(sizeMiB)<<20); err != nil {
		f.Close()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		return "", nil, err
	}
	if err := release.Sign(b.key, path); err != nil {
		return "", nil, err
	}
	cleanup := func() {
		for _, s := range []string{"", ".sha256", ".sha256.sigstore.json", ".sha256.sig"} {
			os.Remove(path + s)
		}
	}
	u, err := a.URL(b.base, a.TarballName())
	return u, cleanup, err
}

type measurement struct {
	wall   time.Duration
	maxRSS int64 // bytes
}

// runCmd runs cmd and returns its wall time and peak RSS.
func runCmd(cmd *exec.Cmd) (measurement, error) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return measurement{}, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // KiB on Linux
	}
	return measurement{wall: wall, maxRSS: rss}, nil
}

func (b *bench) outDir() string { return filepath.Join(b.work, "out") }

// clearOut removes previous outputs so every run writes fresh files.
func (b *bench) clearOut() error {
	entries, err := os.ReadDir(b.outDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(b.outDir(), e.Name())); err != nil {
			return err
		}
	}
	// Let the previous run's dirty pages reach the disk outside the clock.
	syscall.Sync()
	return nil
}

func (b *bench) ours() (measurement, error) {
	exe, err := os.Executable()
	if err != nil {
		return measurement{}, err
	}
	cmd := exec.Command(exe, "child", "-base", b.base, "-pub", b.pubPath, "-staging", b.outDir())
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+b.caPath)
	return runCmd(cmd)
}

func (b *bench) curl(url string) (measurement, error) {
	return runCmd(exec.Command("curl", "-sS", "--fail", "--cacert", b.caPath, "-o", filepath.Join(b.outDir(), "curl.out"), url))
}

func (b *bench) script(url string) (measurement, error) {
	out := filepath.Join(b.outDir(), "script.out")
	return runCmd(exec.Command("sh", "-c", `curl -sS --fail --cacert "$1" -o "$2" "$3" && sha256sum "$2"`, "sh", b.caPath, out, url))
}

func (b *bench) timing(sizeMiB, reps int) error {
	url, cleanup, err := b.publish(sizeMiB)
	if err != nil {
		return err
	}
	defer cleanup()
	names := []string{"curl -o (floor)", "curl -o + sha256sum", "teleport-update FetchVerified"}
	runs := []func() (measurement, error){
		func() (measurement, error) { return b.curl(url) },
		func() (measurement, error) { return b.script(url) },
		b.ours,
	}
	walls := make([][]time.Duration, len(runs))
	rss := make([]int64, len(runs))
	// One warm-up round (page cache, TLS session setup), then interleaved
	// repetitions so background load hits every contender alike.
	for rep := -1; rep < reps; rep++ {
		for i, f := range runs {
			if err := b.clearOut(); err != nil {
				return err
			}
			m, err := f()
			if err != nil {
				return err
			}
			if rep >= 0 {
				walls[i] = append(walls[i], m.wall)
				rss[i] = max(rss[i], m.maxRSS)
			}
		}
	}
	floor := median(walls[0])
	fmt.Printf("\nFetch of a %d MiB artifact, %d interleaved runs each (after one warm-up round)\n", sizeMiB, reps)
	fmt.Printf("%-32s %10s %10s %12s %10s\n", "command", "median", "best", "vs floor", "peak RSS")
	for i, name := range names {
		med := median(walls[i])
		fmt.Printf("%-32s %10s %10s %11.2fx %8.1f MiB\n", name, ms(med), ms(slices.Min(walls[i])), float64(med)/float64(floor), float64(rss[i])/(1<<20))
	}
	ours, script := median(walls[2]), median(walls[1])
	fmt.Printf("goal: ours <= 1.15x floor: %s (%.2fx); faster than curl+sha256sum: %s (%.2fx of it)\n",
		verdict(float64(ours) <= 1.15*float64(floor)), float64(ours)/float64(floor),
		verdict(ours < script), float64(ours)/float64(script))
	return nil
}

func (b *bench) rss(sizes []int) error {
	fmt.Printf("\nPeak RSS of the FetchVerified process by artifact size\n")
	fmt.Printf("%-10s %12s %10s\n", "size", "peak RSS", "wall")
	var peaks []int64
	for _, size := range sizes {
		_, cleanup, err := b.publish(size)
		if err != nil {
			return err
		}
		if err := b.clearOut(); err != nil {
			cleanup()
			return err
		}
		m, err := b.ours()
		cleanup()
		if err != nil {
			return err
		}
		peaks = append(peaks, m.maxRSS)
		fmt.Printf("%-10s %8.1f MiB %10s\n", strconv.Itoa(size)+" MiB", float64(m.maxRSS)/(1<<20), ms(m.wall))
	}
	if err := b.clearOut(); err != nil {
		return err
	}
	lo, hi := slices.Min(peaks), slices.Max(peaks)
	fmt.Printf("goal: peak RSS < 40 MiB: %s (max %.1f MiB); flat: spread %.1f MiB (%.0f%%)\n",
		verdict(hi < 40<<20), float64(hi)/(1<<20), float64(hi-lo)/(1<<20), 100*float64(hi-lo)/float64(lo))
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func numCPU() int {
	n, err := os.ReadFile("/sys/fs/cgroup/cpu.max")
	if err == nil {
		if q, p, ok := strings.Cut(strings.TrimSpace(string(n)), " "); ok && q != "max" {
			qi, e1 := strconv.Atoi(q)
			pi, e2 := strconv.Atoi(p)
			if e1 == nil && e2 == nil && pi > 0 {
				return max(1, qi/pi)
			}
		}
	}
	return runtime.NumCPU()
}
