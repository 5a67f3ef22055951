// Command noop measures what a timer run costs a host when there is nothing
// to do: `teleport-update update` on an up-to-date host (wall time and peak
// RSS) against `curl` of the same find endpoint, in the same run.
//
//	go run ./bench/noop -runs 30
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

func main() {
	runs := flag.Int("runs", 30, "runs of each command")
	flag.Parse()
	if err := run(*runs); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}

type sample struct {
	wall time.Duration
	rss  int64 // KiB
}

func measure(cmd *exec.Cmd) (sample, error) {
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%v: %v\n%s", cmd.Args, err, out)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: wall, rss: ru.Maxrss}, nil
}

func median(s []sample) sample {
	walls := make([]time.Duration, len(s))
	rss := make([]int64, len(s))
	for i, x := range s {
		walls[i], rss[i] = x.wall, x.rss
	}
	slices.Sort(walls)
	slices.Sort(rss)
	return sample{wall: walls[len(walls)/2], rss: rss[len(rss)-1]}
}

func run(runs int) error {
	dir, err := os.MkdirTemp("", "noop-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "teleport-update")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/teleport-update")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}

	keyDir := filepath.Join(dir, "key")
	os.Mkdir(keyDir, 0o700)
	privPath, pubPath, err := release.GenerateKey(keyDir)
	if err != nil {
		return err
	}
	key, err := release.LoadPrivateKey(privPath)
	if err != nil {
		return err
	}
	cdn := fixture.NewCDN()
	defer cdn.Close()
	data, err := releasetest.ScriptRelease("1.0.0", false)
	if err != nil {
		return err
	}
	art, err := download.NewArtifact(download.ProductTeleport, "1.0.0", runtime.GOOS, runtime.GOARCH)
	if err != nil {
		return err
	}
	if err := cdn.Publish(key, dir, art.TarballName(), data); err != nil {
		return err
	}
	tlsFiles, err := fixture.NewTLS(dir)
	if err != nil {
		return err
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, append(tlsFiles.CAPEM, cdn.CertPEM()...), 0o644); err != nil {
		return err
	}
	policy := filepath.Join(dir, "policy.yaml")
	pol := fixture.Policy{Version: "1.0.0", Schedule: "immediate", Group: "staging", Window: "0 2 * * *", Duration: time.Hour}
	if err := os.WriteFile(policy, pol.YAML(), 0o644); err != nil {
		return err
	}
	proxy, err := fixture.StartProxy(bin, "--resource", policy, "--listen", "127.0.0.1:0", "--tls-cert", tlsFiles.CertFile, "--tls-key", tlsFiles.KeyFile)
	if err != nil {
		return err
	}
	defer proxy.Stop()

	root := filepath.Join(dir, "root")
	pub, _ := os.ReadFile(pubPath)
	if err := fixture.TrustKey(root, "bench", pub); err != nil {
		return err
	}
	env := append(os.Environ(), "SSL_CERT_FILE="+caFile)
	inst := exec.Command(bin, "--root", root, "install", "--proxy", proxy.Addr, "--group", "staging", "--base-url", cdn.Server.URL, "--no-census")
	inst.Env = env
	if out, err := inst.CombinedOutput(); err != nil {
		return fmt.Errorf("install: %v\n%s", err, out)
	}

	var upd, curl []sample
	for i := 0; i < runs; i++ {
		c := exec.Command(bin, "--root", root, "update")
		c.Env = env
		s, err := measure(c)
		if err != nil {
			return err
		}
		upd = append(upd, s)
		c = exec.Command("curl", "-sS", "--fail", "--cacert", caFile, "-o", "/dev/null", "https://"+proxy.Addr+"/v1/webapi/find?group=staging")
		if s, err = measure(c); err != nil {
			return err
		}
		curl = append(curl, s)
	}
	mu, mc := median(upd), median(curl)
	fmt.Printf("No-op timer run (host up to date), %d runs each, median wall time, peak RSS:\n", runs)
	fmt.Printf("%-40s %10s %10s\n", "command", "wall", "peak RSS")
	fmt.Printf("%-40s %10s %7.1f MiB\n", "curl find endpoint (baseline)", mc.wall.Round(100*time.Microsecond), float64(mc.rss)/1024)
	fmt.Printf("%-40s %10s %7.1f MiB\n", "teleport-update update", mu.wall.Round(100*time.Microsecond), float64(mu.rss)/1024)
	fmt.Printf("ratio update/curl: %.2fx wall (goal ≤ 3x); update peak RSS %.1f MiB (goal < 30 MiB)\n",
		float64(mu.wall)/float64(mc.wall), float64(mu.rss)/1024)
	return nil
}
