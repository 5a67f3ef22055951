// Command extract benchmarks install.Extract (all checks on: SHA-256,
// entry validation, os.Root, fsync, .verified) against `tar -xzf` of the
// same release tarball, interleaved in the same run, and prints the ratio.
//
//	go run ./bench/extract -unpacked 480 -reps 5
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gravitational/teleport-update/bench/internal/benchkit"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

func main() {
	unpackedMiB := flag.Int64("unpacked", 480, "unpacked release size in MiB (480 MiB gives a ~256 MiB tarball)")
	reps := flag.Int("reps", 5, "repetitions of each method")
	work := flag.String("dir", "", "work directory on the filesystem to test (default: a new temp dir)")
	tarball := flag.String("tarball", "", "use this tarball instead of generating one")
	flag.Parse()
	if err := run(*unpackedMiB<<20, *reps, *work, *tarball); err != nil {
		log.Fatal(err)
	}
}

func run(unpacked int64, reps int, work, tarball string) error {
	work, cleanup, err := benchkit.WorkDir(work, "bench-extract-")
	if err != nil {
		return err
	}
	defer cleanup()
	if tarball == "" {
		tarball = filepath.Join(work, "teleport-v1.0.0-linux-amd64-bin.tar.gz")
		start := time.Now()
		if err := generate(tarball, unpacked); err != nil {
			return fmt.Errorf("generate tarball: %w", err)
		}
		log.Printf("generated %s in %s", tarball, time.Since(start).Round(time.Millisecond))
	}
	sum, size, err := hashFile(tarball)
	if err != nil {
		return err
	}
	fmt.Printf("tarball: %.1f MiB compressed, %.1f MiB unpacked\n", float64(size)/(1<<20), float64(unpacked)/(1<<20))

	var ours, gnu, oursCPU, gnuCPU []time.Duration
	for i := range reps {
		dir := filepath.Join(work, fmt.Sprintf("tar-%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		start := time.Now()
		cmd := exec.Command("tar", "-xzf", tarball, "-C", dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		gnu = append(gnu, time.Since(start))
		gnuCPU = append(gnuCPU, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		if err := os.RemoveAll(dir); err != nil {
			return err
		}

		root := filepath.Join(work, fmt.Sprintf("root-%d", i))
		start = time.Now()
		cpu0 := selfCPU()
		if err := install.New(root).Extract(context.Background(), tarball, "1.0.0", sum, install.DefaultLimits); err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		ours = append(ours, time.Since(start))
		oursCPU = append(oursCPU, selfCPU()-cpu0)
		if err := os.RemoveAll(root); err != nil {
			return err
		}
		fmt.Printf("rep %d: wall: tar -xzf %s, install.Extract %s, ratio %.2f; cpu: tar+gzip %s, install.Extract %s, ratio %.2f\n", i+1,
			ms(gnu[i]), ms(ours[i]), ours[i].Seconds()/gnu[i].Seconds(),
			ms(gnuCPU[i]), ms(oursCPU[i]), oursCPU[i].Seconds()/gnuCPU[i].Seconds())
	}
	mt, mo := benchkit.Median(gnu), benchkit.Median(ours)
	ct, co := benchkit.Median(gnuCPU), benchkit.Median(oursCPU)
	fmt.Printf("median wall: tar -xzf %s, install.Extract %s, ratio %.2f (goal <= 1.2)\n", ms(mt), ms(mo), mo.Seconds()/mt.Seconds())
	fmt.Printf("median cpu:  tar -xzf %s, install.Extract %s, ratio %.2f\n", ms(ct), ms(co), co.Seconds()/ct.Seconds())
	return nil
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// selfCPU is the user+system CPU time this process used so far; on a
// shared machine it is a steadier yardstick than wall time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
