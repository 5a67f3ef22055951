//go:build crashtest

package main

import (
	"os"
	"syscall"
)

// In binaries built with -tags crashtest (tests only), the environment
// variable TELEPORT_UPDATE_CRASH_AT=<step> makes the process SIGKILL itself
// right after that step of a version switch, to prove every step is
// crash-safe. Production builds do not contain this file.
func init() {
	at := os.Getenv("TELEPORT_UPDATE_CRASH_AT")
	if at == "" {
		return
	}
	afterStep = func(step string) {
		if step == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
