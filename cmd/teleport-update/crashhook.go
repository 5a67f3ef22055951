//go:build crashtest

package main

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/gravitational/teleport-update/internal/updater"
)

// In binaries built with -tags crashtest (tests only), the environment
// variable TELEPORT_UPDATE_CRASH_AT=<step>[#<n>] makes the process SIGKILL
// itself right after the n-th time (default: the first) it reaches that
// updater.Step, to prove every step is crash-safe. Production builds do
// not contain this file.
//
// A binary built with -ldflags "-X main.failSetup=1" stands for a broken
// new updater: its setup fails after writing its units.
//
// The setup steps are reached in the child process a self-update runs; a
// kill there kills its parent (the run) first, as a power loss would.
func init() {
	if failSetup == "1" {
		setupCheck = func() error { return errors.New("this test build's setup fails") }
	}
	at, nth := parseCrashAt(os.Getenv("TELEPORT_UPDATE_CRASH_AT"))
	if at == "" {
		return
	}
	seen := 0
	afterStep = func(step updater.Step) {
		if step != at {
			return
		}
		if seen++; seen == nth {
			if strings.HasPrefix(string(step), "setup-") {
				_ = syscall.Kill(os.Getppid(), syscall.SIGKILL)
			}
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}

// failSetup is set with -ldflags "-X main.failSetup=1".
var failSetup string

// parseCrashAt splits "step#n"; n is 1 when absent or invalid.
func parseCrashAt(v string) (updater.Step, int) {
	step, count, ok := strings.Cut(v, "#")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n < 1 {
		n = 1
	}
	return updater.Step(step), n
}
