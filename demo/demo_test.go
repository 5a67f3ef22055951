package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs the whole demo, as `make demo` does, and fails on any
// unexpected outcome: a step whose result is not the one the demo promises
// (v1 installed, v2 active with v1 as backup, v3 rolled back and skipped),
// a child process that does not start or stop, or files left behind.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo builds teleport-update and runs a proxy; skipped with -short")
	}
	work := filepath.Join(t.TempDir(), "demo")
	if err := os.Mkdir(work, 0o700); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(context.Background(), &out, options{work: work})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo failed: %v", err)
	}
	for _, want := range []string{
		"== Step 1: Build",
		"The host runs 1.0.0",
		"2.0.0 is active",
		"The update failed as expected",
		"rolled back to 2.0.0",
		"The proxy picked one canary among the three reporting hosts",
		"the proxy halted the group: canary",
		"4.0.0 reached one host of three",
		"The demo finished: every step behaved as expected.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if _, err := os.Stat(work); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demo left its directory behind: stat: %v", err)
	}
}
