// Package benchkit holds the plumbing the file-transfer benchmarks share: a
// loopback HTTPS file server, child processes timed with their peak RSS,
// interleaved repetitions against baselines, and the tables that report
// them.
package benchkit

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Measurement is one timed run: its wall time and peak RSS in bytes (zero
// where the run was not a child process).
type Measurement struct {
	Wall   time.Duration
	MaxRSS int64
}

// Run is one contender of a timing comparison.
type Run func() (Measurement, error)

// RunCmd runs cmd and returns its wall time and peak RSS (the largest of
// the process and the children it waited for, as wait4 reports it).
func RunCmd(cmd *exec.Cmd) (Measurement, error) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // KiB on Linux
	}
	return Measurement{Wall: wall, MaxRSS: rss}, nil
}

// ServeFiles serves dir over HTTPS on a loopback port and returns the
// server and its base URL. Unless http2 is set the server speaks only
// HTTP/1.1, as curl uses by default, so the server costs every client the
// same.
func ServeFiles(dir string, cfg *tls.Config, http2 bool) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{
		Handler:           http.FileServer(http.Dir(dir)),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
	}
	if !http2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	go srv.ServeTLS(ln, "", "")
	return srv, "https://" + ln.Addr().String(), nil
}

// Results are the wall times of each contender, in the order given, and
// the largest peak RSS each reached.
type Results struct {
	Walls [][]time.Duration
	RSS   []int64
}

// Median returns the median wall time of contender i.
func (r Results) Median(i int) time.Duration { return Median(r.Walls[i]) }

// Interleave runs one warm-up round (page cache, TLS session setup) and
// then reps rounds of every run in turn, so background load hits every
// contender alike; clear is called before each run, outside the clock.
func Interleave(reps int, clear func() error, runs []Run) (Results, error) {
	r := Results{Walls: make([][]time.Duration, len(runs)), RSS: make([]int64, len(runs))}
	for rep := -1; rep < reps; rep++ {
		for i, f := range runs {
			if err := clear(); err != nil {
				return r, err
			}
			m, err := f()
			if err != nil {
				return r, err
			}
			if rep >= 0 {
				r.Walls[i] = append(r.Walls[i], m.Wall)
				r.RSS[i] = max(r.RSS[i], m.MaxRSS)
			}
		}
	}
	return r, nil
}

// PrintTable prints median, best, ratio against the first contender (the
// floor) and peak RSS of every contender, named by names.
func PrintTable(names []string, r Results) {
	floor := r.Median(0)
	fmt.Printf("%-32s %10s %10s %12s %10s\n", "command", "median", "best", "vs floor", "peak RSS")
	for i, name := range names {
		med := r.Median(i)
		fmt.Printf("%-32s %10s %10s %11.2fx %8.1f MiB\n", name, MS(med), MS(slices.Min(r.Walls[i])), float64(med)/float64(floor), float64(r.RSS[i])/(1<<20))
	}
}

// PeakRSS runs once per size: prepare(size) publishes the input and
// returns its cleanup, clear empties the outputs, run is measured. It
// prints a table of peak RSS by size and whether the peak stays under
// 40 MiB and how flat it is.
func PeakRSS(sizes []int, prepare func(sizeMiB int) (func(), error), clear func() error, run Run) error {
	fmt.Printf("%-10s %12s %10s\n", "size", "peak RSS", "wall")
	var peaks []int64
	for _, size := range sizes {
		cleanup, err := prepare(size)
		if err != nil {
			return err
		}
		if err := clear(); err != nil {
			cleanup()
			return err
		}
		m, err := run()
		cleanup()
		if err != nil {
			return err
		}
		peaks = append(peaks, m.MaxRSS)
		fmt.Printf("%-10s %8.1f MiB %10s\n", strconv.Itoa(size)+" MiB", float64(m.MaxRSS)/(1<<20), MS(m.Wall))
	}
	if err := clear(); err != nil {
		return err
	}
	lo, hi := slices.Min(peaks), slices.Max(peaks)
	fmt.Printf("goal: peak RSS < 40 MiB: %s (max %.1f MiB); flat: spread %.1f MiB (%.0f%%)\n",
		Verdict(hi < 40<<20), float64(hi)/(1<<20), float64(hi-lo)/(1<<20), 100*float64(hi-lo)/float64(lo))
	return nil
}

// ParseSizes parses a comma-separated list of positive sizes in MiB; an
// empty list is nil.
func ParseSizes(flagName, list string) ([]int, error) {
	var sizes []int
	for s := range strings.SplitSeq(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad -%s entry %q", flagName, s)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// Median returns the median of d (zero for none) without reordering d.
func Median(d []time.Duration) time.Duration {
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

// MS formats d in whole milliseconds.
func MS(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// Verdict words whether a goal was met.
func Verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// LoadAvg returns the 1-, 5- and 15-minute load averages, a hint of how
// contended the machine was, or "?".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// WorkDir returns dir, or a new temporary directory named after prefix
// where dir is empty, and a func that removes what WorkDir created.
func WorkDir(dir, prefix string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// ClearDir empties dir, the previous run's outputs, and flushes their dirty
// pages outside the clock, so every run writes fresh files to a quiet disk.
func ClearDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}
