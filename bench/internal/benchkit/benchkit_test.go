package benchkit

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	t.Parallel()
	d := []time.Duration{5, 1, 3, 2}
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{{nil, 0}, {[]time.Duration{7}, 7}, {[]time.Duration{9, 1, 4}, 4}, {d, 2}} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !slices.Equal(d, []time.Duration{5, 1, 3, 2}) {
		t.Errorf("Median reordered its input: %v", d)
	}
}

func TestParseSizes(t *testing.T) {
	t.Parallel()
	got, err := ParseSizes("rss-sizes", " 16, 64 ,,512")
	if err != nil || !slices.Equal(got, []int{16, 64, 512}) {
		t.Fatalf("ParseSizes = %v, %v", got, err)
	}
	if got, err := ParseSizes("rss-sizes", ""); err != nil || got != nil {
		t.Fatalf("ParseSizes of nothing = %v, %v", got, err)
	}
	for _, bad := range []string{"0", "-4", "x", "8,1e3"} {
		if _, err := ParseSizes("rss-sizes", bad); err == nil {
			t.Errorf("ParseSizes(%q) took it", bad)
		}
	}
}

// TestInterleave: a warm-up round that is not counted, then reps rounds in
// which every run follows a clear; the largest RSS of each run is kept.
func TestInterleave(t *testing.T) {
	t.Parallel()
	var order []string
	clear := func() error { order = append(order, "clear"); return nil }
	rss := int64(0)
	runs := []Run{
		func() (Measurement, error) {
			order = append(order, "a")
			rss++
			return Measurement{Wall: 1, MaxRSS: rss}, nil
		},
		func() (Measurement, error) { order = append(order, "b"); return Measurement{Wall: 2}, nil },
	}
	res, err := Interleave(2, clear, runs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"clear", "a", "clear", "b", "clear", "a", "clear", "b", "clear", "a", "clear", "b"}
	if !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if len(res.Walls[0]) != 2 || len(res.Walls[1]) != 2 || res.RSS[0] != 3 || res.RSS[1] != 0 {
		t.Errorf("results %+v; want 2 walls each and a's RSS 3", res)
	}
	boom := errors.New("boom")
	if _, err := Interleave(1, func() error { return boom }, runs); !errors.Is(err, boom) {
		t.Errorf("a failing clear: %v", err)
	}
}

func TestRunCmdReportsFailure(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	m, err := RunCmd(exec.Command("sh", "-c", "exit 0"))
	if err != nil || m.Wall <= 0 || m.MaxRSS <= 0 {
		t.Fatalf("RunCmd = %+v, %v; want a wall time and an RSS", m, err)
	}
	if _, err := RunCmd(exec.Command("sh", "-c", "printf o%sps o >&2; exit 3")); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("RunCmd of a failing command = %v; want its stderr", err)
	}
}

func TestClearDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(filepath.Join(dir, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := ClearDir(dir); err != nil {
		t.Fatal(err)
	}
	if e, err := os.ReadDir(dir); err != nil || len(e) != 0 {
		t.Fatalf("after ClearDir: %v, %v; want an empty dir", e, err)
	}
}
