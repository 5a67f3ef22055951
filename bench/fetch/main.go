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
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/bench/internal/benchkit"
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
	sizes, err := benchkit.ParseSizes("rss-sizes", rss)
	if err != nil {
		return err
	}
	cfg.rssSizes = sizes
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
	b.srv, b.base, err = benchkit.ServeFiles(filepath.Join(work, "www"), serverTLS, http2)
	return b, err
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

func (b *bench) outDir() string { return filepath.Join(b.work, "out") }

// clearOut removes previous outputs outside the clock.
func (b *bench) clearOut() error { return benchkit.ClearDir(b.outDir()) }

func (b *bench) ours() (benchkit.Measurement, error) {
	exe, err := os.Executable()
	if err != nil {
		return benchkit.Measurement{}, err
	}
	cmd := exec.Command(exe, "child", "-base", b.base, "-pub", b.pubPath, "-staging", b.outDir())
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+b.caPath)
	return benchkit.RunCmd(cmd)
}

func (b *bench) curl(url string) (benchkit.Measurement, error) {
	return benchkit.RunCmd(exec.Command("curl", "-sS", "--fail", "--cacert", b.caPath, "-o", filepath.Join(b.outDir(), "curl.out"), url))
}

func (b *bench) script(url string) (benchkit.Measurement, error) {
	out := filepath.Join(b.outDir(), "script.out")
	return benchkit.RunCmd(exec.Command("sh", "-c", `curl -sS --fail --cacert "$1" -o "$2" "$3" && sha256sum "$2"`, "sh", b.caPath, out, url))
}

func (b *bench) timing(sizeMiB, reps int) error {
	url, cleanup, err := b.publish(sizeMiB)
	if err != nil {
		return err
	}
	defer cleanup()
	names := []string{"curl -o (floor)", "curl -o + sha256sum", "teleport-update FetchVerified"}
	runs := []benchkit.Run{
		func() (benchkit.Measurement, error) { return b.curl(url) },
		func() (benchkit.Measurement, error) { return b.script(url) },
		b.ours,
	}
	// One warm-up round (page cache, TLS session setup), then interleaved
	// repetitions so background load hits every contender alike.
	res, err := benchkit.Interleave(reps, b.clearOut, runs)
	if err != nil {
		return err
	}
	floor := res.Median(0)
	fmt.Printf("\nFetch of a %d MiB artifact, %d interleaved runs each (after one warm-up round)\n", sizeMiB, reps)
	benchkit.PrintTable(names, res)
	ours, script := res.Median(2), res.Median(1)
	fmt.Printf("goal: ours <= 1.15x floor: %s (%.2fx); faster than curl+sha256sum: %s (%.2fx of it)\n",
		benchkit.Verdict(float64(ours) <= 1.15*float64(floor)), float64(ours)/float64(floor),
		benchkit.Verdict(ours < script), float64(ours)/float64(script))
	return nil
}

func (b *bench) rss(sizes []int) error {
	fmt.Printf("\nPeak RSS of the FetchVerified process by artifact size\n")
	prepare := func(size int) (func(), error) {
		_, cleanup, err := b.publish(size)
		return cleanup, err
	}
	return benchkit.PeakRSS(sizes, prepare, b.clearOut, b.ours)
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
