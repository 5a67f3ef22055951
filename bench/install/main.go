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
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/gravitational/teleport-update/bench/internal/benchkit"
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
	sizes, err := benchkit.ParseSizes("rss-sizes", rss)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/install:", err)
		os.Exit(2)
	}
	cfg.rssSizes = sizes
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
		runtime.NumCPU(), benchkit.LoadAvg(), work)
	if err := b.timing(cfg.size, cfg.reps); err != nil {
		return err
	}
	if len(cfg.rssSizes) > 0 {
		return b.rss(cfg.rssSizes)
	}
	return nil
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
// default against it).
func (b *bench) serve(ca *fixture.CA) error {
	serverTLS, err := ca.ServerConfig("bench-install")
	if err != nil {
		return err
	}
	b.srv, b.base, err = benchkit.ServeFiles(b.www(), serverTLS, false)
	return err
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

// clearOut removes the previous outputs outside the clock.
func (b *bench) clearOut() error { return benchkit.ClearDir(b.out()) }

// ours installs the release on a fresh host root with the real binary.
func (b *bench) ours() (benchkit.Measurement, error) { return b.install(b.bin) }

// install installs the release on a fresh host root with binary bin.
func (b *bench) install(bin string) (benchkit.Measurement, error) {
	root := filepath.Join(b.out(), "root")
	if err := fixture.TrustKey(root, "bench", b.pubPEM); err != nil {
		return benchkit.Measurement{}, err
	}
	cmd := exec.Command(bin, "--root", root, "install", "--proxy", b.proxy.Addr, "--group", "staging",
		"--base-url", b.base, "--no-census")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+b.caPath)
	return benchkit.RunCmd(cmd)
}

func (b *bench) url(name string) string { return b.base + "/" + name }

func (b *bench) curl() (benchkit.Measurement, error) {
	return benchkit.RunCmd(exec.Command("curl", "-sS", "--fail", "--cacert", b.caPath, "-o", filepath.Join(b.out(), "curl.out"), b.url(b.art.TarballName())))
}

func (b *bench) pipe() (benchkit.Measurement, error) {
	return benchkit.RunCmd(exec.Command("sh", "-c", `curl -sS --fail --cacert "$1" "$2" | tar -xzf - -C "$3"`,
		"sh", b.caPath, b.url(b.art.TarballName()), b.out()))
}

func (b *bench) script() (benchkit.Measurement, error) {
	name := b.art.TarballName()
	return benchkit.RunCmd(exec.Command("sh", "-c", `cd "$3" && curl -sS --fail --cacert "$1" -o "$2" "$4/$2" &&
		curl -sS --fail --cacert "$1" -o "$2.sha256" "$4/$2.sha256" && sha256sum --quiet -c "$2.sha256" &&
		mkdir x && tar -xzf "$2" -C x`, "sh", b.caPath, name, b.out(), b.base))
}

// inflate decompresses the tarball with the updater's gzip package and
// discards the output: the decompression alone, on one core.
func (b *bench) inflate() (benchkit.Measurement, error) {
	start := time.Now()
	f, err := os.Open(filepath.Join(b.www(), b.art.TarballName()))
	if err != nil {
		return benchkit.Measurement{}, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return benchkit.Measurement{}, err
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return benchkit.Measurement{}, err
	}
	return benchkit.Measurement{Wall: time.Since(start)}, nil
}

func (b *bench) timing(sizeMiB, reps int) error {
	size, cleanup, err := b.publish(sizeMiB)
	if err != nil {
		return err
	}
	defer cleanup()
	names := []string{"curl -o (floor)", "curl | tar -xzf", "curl + sha256sum -c + tar -xzf", "teleport-update install", "inflate only (in process)"}
	runs := []benchkit.Run{b.curl, b.pipe, b.script, b.ours, b.inflate}
	if b.compare != "" {
		names = append(names, "install by "+filepath.Base(b.compare))
		runs = append(runs, func() (benchkit.Measurement, error) { return b.install(b.compare) })
	}
	// One warm-up round, then interleaved repetitions so background load
	// hits every contender alike.
	res, err := benchkit.Interleave(reps, b.clearOut, runs)
	if err != nil {
		return err
	}
	floor := res.Median(0)
	fmt.Printf("\nInstall of a %.0f MiB release in Teleport's layout (%.0f MiB unpacked), %d interleaved runs each (after one warm-up round)\n",
		float64(size)/(1<<20), float64(sizeMiB)*compression, reps)
	benchkit.PrintTable(names, res)
	ours := res.Median(3)
	fmt.Printf("ours vs curl | tar -xzf: %.2fx; vs curl + sha256sum + tar: %.2fx; vs max(curl -o, inflate only): %.2fx\n",
		float64(ours)/float64(res.Median(1)), float64(ours)/float64(res.Median(2)),
		float64(ours)/float64(max(floor, res.Median(4))))
	fmt.Printf("goal: ours <= 1.5x floor: %s (%.2fx)\n", benchkit.Verdict(float64(ours) <= 1.5*float64(floor)), float64(ours)/float64(floor))
	return b.clearOut()
}

func (b *bench) rss(sizes []int) error {
	fmt.Printf("\nPeak RSS of the teleport-update install process by release size\n")
	prepare := func(size int) (func(), error) {
		_, cleanup, err := b.publish(size)
		return cleanup, err
	}
	return benchkit.PeakRSS(sizes, prepare, b.clearOut, b.ours)
}
