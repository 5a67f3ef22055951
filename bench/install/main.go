// Command install benchmarks the whole install of a release through the
// real binary: `teleport-update install` on a fresh host root (find answer
// from a real `proxy serve`, the signed .sha256 and its bundle fetched and
// verified, the tarball fetched over loopback HTTPS, hashed, unpacked with
// every safety check, fsynced, renamed into versions/, marked .verified,
// linked, its exec health check run) against shell baselines over the same
// server, interleaved in the same run:
//
//   - floor:  curl -o OUT URL                                      (transfer and write alone)
//   - pipe:   curl URL | tar -xzf - -C DIR                          (no check at all)
//   - script: curl -o + curl .sha256 + sha256sum -c + tar -xzf      (what a careful script does)
//   - inflate: the tarball decompressed in this process by the gzip package
//     the updater uses, to /dev/null: not an install, but the other half of
//     the floor, which is about max(transfer, decompression + writes)
//
// The release is in Teleport's tarball layout (teleport/teleport, tctl,
// tsh, tbot, fdpass-teleport, teleport-update, examples/, install, docs),
// filled with bytes that compress like Go binaries (about 2:1). It
// reports wall times (median and best), the ratios against the floor, and
// the peak RSS (wait4's ru_maxrss) of the install process for several
// release sizes.
//
//	go run ./bench/install                          # 256 MiB timing, RSS for 64,256,512 MiB
//	go run ./bench/install -size 64 -rss-sizes 16,64 -reps 3
//
// Goals: ours ≤ 1.5× the floor; peak RSS < 40 MiB and flat from 64 to
// 512 MiB.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
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

	"github.com/klauspost/compress/gzip"

	"github.com/gravitational/teleport-update/bench/internal/relgen"
	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

const version = "16.4.6"

// compression is about how much binaryLike bytes shrink under gzip -6:
// an unpacked size of compression × N MiB gives a tarball of about N MiB.
const compression = 1.875

func main() {
	var cfg config
	var rss string
	flag.IntVar(&cfg.size, "size", 256, "tarball size in MiB for the timing comparison")
	flag.StringVar(&rss, "rss-sizes", "64,256,512", "tarball sizes in MiB for the peak-RSS runs (comma-separated, empty to skip)")
	flag.IntVar(&cfg.reps, "reps", 5, "interleaved repetitions of each timed command")
	flag.StringVar(&cfg.dir, "dir", "", "parent of the temporary work dir (default: $TMPDIR); put it on the filesystem you care about")
	flag.StringVar(&cfg.compare, "compare", "", "another teleport-update binary (say, an earlier build) to time alongside")
	flag.Parse()
	for s := range strings.SplitSeq(rss, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench/install: bad -rss-sizes entry %q\n", s)
			os.Exit(2)
		}
		cfg.rssSizes = append(cfg.rssSizes, n)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench/install:", err)
		os.Exit(1)
	}
}

type config struct {
	size     int
	rssSizes []int
	reps     int
	dir      string
	compare  string
}

func run(cfg config) error {
	for _, tool := range []string{"curl", "sha256sum", "tar", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed: %w", tool, err)
		}
	}
	work, err := os.MkdirTemp(cfg.dir, "bench-install-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b, err := newBench(work)
	if err != nil {
		return err
	}
	b.compare = cfg.compare
	defer b.close()
	fmt.Printf("bench/install: real binary, loopback HTTPS (HTTP/1.1), %d CPUs, load average %s, work dir %s\n",
		runtime.NumCPU(), loadavg(), work)
	if err := b.timing(cfg.size, cfg.reps); err != nil {
		return err
	}
	if len(cfg.rssSizes) > 0 {
		return b.rss(cfg.rssSizes)
	}
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

type bench struct {
	work    string
	bin     string
	caPath  string
	pubPEM  []byte
	signKey string
	srv     *http.Server
	base    string
	proxy   *fixture.Proxy
	art     download.Artifact
	compare string // another binary to time, or ""
}

func (b *bench) www() string { return filepath.Join(b.work, "www") }
func (b *bench) out() string { return filepath.Join(b.work, "out") }

func newBench(work string) (*bench, error) {
	b := &bench{work: work, art: releasetest.MustArtifact(version, runtime.GOARCH)}
	for _, d := range []string{"www", "out", "keys"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o700); err != nil {
			return nil, err
		}
	}
	b.bin = filepath.Join(work, "teleport-update")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", b.bin, "./cmd/teleport-update")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build: %v\n%s", err, out)
	}
	priv, pub, err := release.GenerateKey(filepath.Join(work, "keys"))
	if err != nil {
		return nil, err
	}
	b.signKey = priv
	if b.pubPEM, err = os.ReadFile(pub); err != nil {
		return nil, err
	}
	tlsFiles, err := fixture.NewTLS(work)
	if err != nil {
		return nil, err
	}
	ca, err := fixture.NewCA("bench-install CDN CA")
	if err != nil {
		return nil, err
	}
	b.caPath = filepath.Join(work, "ca.pem")
	if err := os.WriteFile(b.caPath, append(ca.PEM, tlsFiles.CAPEM...), 0o644); err != nil {
		return nil, err
	}
	if err := b.serve(ca); err != nil {
		return nil, err
	}
	policy := filepath.Join(work, "policy.yaml")
	pol := fixture.Policy{Version: version, Schedule: "immediate", Group: "staging", Window: "0 2 * * *", Duration: time.Hour}
	if err := os.WriteFile(policy, pol.YAML(), 0o644); err != nil {
		return nil, err
	}
	b.proxy, err = fixture.StartProxy(b.bin, "--resource", policy, "--listen", "127.0.0.1:0",
		"--tls-cert", tlsFiles.CertFile, "--tls-key", tlsFiles.KeyFile)
	return b, err
}

// serve starts a plain file server over HTTPS (HTTP/1.1, as curl uses by
// default against it), so the server costs every client the same.
func (b *bench) serve(ca *fixture.CA) error {
	serverTLS, err := ca.ServerConfig("bench-install")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.base = "https://" + ln.Addr().String()
	b.srv = &http.Server{
		Handler:           http.FileServer(http.Dir(b.www())),
		TLSConfig:         serverTLS,
		ReadHeaderTimeout: 10 * time.Second,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go b.srv.ServeTLS(ln, "", "")
	return nil
}

func (b *bench) close() {
	if b.proxy != nil {
		b.proxy.Stop()
	}
	if b.srv != nil {
		b.srv.Close()
	}
}

// publish generates and signs a release of about sizeMiB MiB in Teleport's
// layout and returns its compressed size and a cleanup func.
func (b *bench) publish(sizeMiB int) (int64, func(), error) {
	path := filepath.Join(b.www(), b.art.TarballName())
	top := "teleport"
	files := []relgen.File{
		// The agent answers `teleport version` for the install's health
		// check and stops reading before the bytes that make its size.
		{Name: top + "/teleport", Share: 0.40, Head: []byte(releasetest.Script(version, false) + "exit 0\n")},
		{Name: top + "/tctl", Share: 0.15},
		{Name: top + "/tsh", Share: 0.15},
		{Name: top + "/tbot", Share: 0.15},
		{Name: top + "/fdpass-teleport", Share: 0.05},
		{Name: top + "/teleport-update", Share: 0.10},
		{Name: top + "/examples/systemd/teleport.service", Head: []byte(releasetest.ExampleUnit)},
		{Name: top + "/install", Head: []byte("#!/bin/sh\nexit 1\n")},
		{Name: top + "/README.md", Head: []byte("Teleport\n")},
		{Name: top + "/CHANGELOG.md", Head: []byte("# Changelog\n")},
		{Name: top + "/VERSION", Head: []byte(version + "\n")},
	}
	unpacked := int64(float64(sizeMiB) * compression * (1 << 20))
	if err := relgen.Write(path, unpacked, []string{top, top + "/examples", top + "/examples/systemd"}, files); err != nil {
		return 0, nil, err
	}
	key, err := release.LoadPrivateKey(b.signKey)
	if err != nil {
		return 0, nil, err
	}
	if err := release.Sign(key, path); err != nil {
		return 0, nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, nil, err
	}
	cleanup := func() {
		for _, s := range append([]string{""}, fixture.SignedSuffixes...) {
			os.Remove(path + s)
		}
	}
	return fi.Size(), cleanup, nil
}

type measurement struct {
	wall   time.Duration
	maxRSS int64 // bytes
}

// runCmd runs cmd and returns its wall time and peak RSS (the largest of
// the process and the children it waited for, as wait4 reports it).
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

// clearOut removes the previous outputs and flushes their dirty pages
// outside the clock, so every run writes to a quiet disk.
func (b *bench) clearOut() error {
	if err := os.RemoveAll(b.out()); err != nil {
		return err
	}
	if err := os.Mkdir(b.out(), 0o700); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// ours installs the release on a fresh host root with the real binary.
func (b *bench) ours() (measurement, error) { return b.install(b.bin) }

// install installs the release on a fresh host root with binary bin.
func (b *bench) install(bin string) (measurement, error) {
	root := filepath.Join(b.out(), "root")
	if err := fixture.TrustKey(root, "bench", b.pubPEM); err != nil {
		return measurement{}, err
	}
	cmd := exec.Command(bin, "--root", root, "install", "--proxy", b.proxy.Addr, "--group", "staging",
		"--base-url", b.base, "--no-census")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+b.caPath)
	return runCmd(cmd)
}

func (b *bench) url(name string) string { return b.base + "/" + name }

func (b *bench) curl() (measurement, error) {
	return runCmd(exec.Command("curl", "-sS", "--fail", "--cacert", b.caPath, "-o", filepath.Join(b.out(), "curl.out"), b.url(b.art.TarballName())))
}

func (b *bench) pipe() (measurement, error) {
	return runCmd(exec.Command("sh", "-c", `curl -sS --fail --cacert "$1" "$2" | tar -xzf - -C "$3"`,
		"sh", b.caPath, b.url(b.art.TarballName()), b.out()))
}

func (b *bench) script() (measurement, error) {
	name := b.art.TarballName()
	return runCmd(exec.Command("sh", "-c", `cd "$3" && curl -sS --fail --cacert "$1" -o "$2" "$4/$2" &&
		curl -sS --fail --cacert "$1" -o "$2.sha256" "$4/$2.sha256" && sha256sum --quiet -c "$2.sha256" &&
		mkdir x && tar -xzf "$2" -C x`, "sh", b.caPath, name, b.out(), b.base))
}

// inflate decompresses the tarball with the updater's gzip package and
// discards the output: the decompression alone, on one core.
func (b *bench) inflate() (measurement, error) {
	start := time.Now()
	f, err := os.Open(filepath.Join(b.www(), b.art.TarballName()))
	if err != nil {
		return measurement{}, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return measurement{}, err
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return measurement{}, err
	}
	return measurement{wall: time.Since(start)}, nil
}

func (b *bench) timing(sizeMiB, reps int) error {
	size, cleanup, err := b.publish(sizeMiB)
	if err != nil {
		return err
	}
	defer cleanup()
	names := []string{"curl -o (floor)", "curl | tar -xzf", "curl + sha256sum -c + tar -xzf", "teleport-update install", "inflate only (in process)"}
	runs := []func() (measurement, error){b.curl, b.pipe, b.script, b.ours, b.inflate}
	if b.compare != "" {
		names = append(names, "install by "+filepath.Base(b.compare))
		runs = append(runs, func() (measurement, error) { return b.install(b.compare) })
	}
	walls := make([][]time.Duration, len(runs))
	rss := make([]int64, len(runs))
	// One warm-up round, then interleaved repetitions so background load
	// hits every contender alike.
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
	fmt.Printf("\nInstall of a %.0f MiB release in Teleport's layout (%.0f MiB unpacked), %d interleaved runs each (after one warm-up round)\n",
		float64(size)/(1<<20), float64(sizeMiB)*compression, reps)
	fmt.Printf("%-32s %10s %10s %12s %10s\n", "command", "median", "best", "vs floor", "peak RSS")
	for i, name := range names {
		med := median(walls[i])
		fmt.Printf("%-32s %10s %10s %11.2fx %8.1f MiB\n", name, ms(med), ms(slices.Min(walls[i])), float64(med)/float64(floor), float64(rss[i])/(1<<20))
	}
	ours := median(walls[3])
	fmt.Printf("ours vs curl | tar -xzf: %.2fx; vs curl + sha256sum + tar: %.2fx; vs max(curl -o, inflate only): %.2fx\n",
		float64(ours)/float64(median(walls[1])), float64(ours)/float64(median(walls[2])),
		float64(ours)/float64(max(floor, median(walls[4]))))
	fmt.Printf("goal: ours <= 1.5x floor: %s (%.2fx)\n", verdict(float64(ours) <= 1.5*float64(floor)), float64(ours)/float64(floor))
	return b.clearOut()
}

func (b *bench) rss(sizes []int) error {
	fmt.Printf("\nPeak RSS of the teleport-update install process by release size\n")
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
