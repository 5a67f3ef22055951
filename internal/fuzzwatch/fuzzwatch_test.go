package fuzzwatch

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The watchdog's panic ends the process, so the hanging case runs in a child
// copy of this test binary.
const childEnv = "FUZZWATCH_CHILD"

func TestStartPanicsOnHang(t *testing.T) {
	if os.Getenv(childEnv) == "hang" {
		defer start(50 * time.Millisecond)()
		select {} // an input the target never finishes
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStartPanicsOnHang$")
	cmd.Env = append(os.Environ(), childEnv+"=hang")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a hanging input did not end the process; output:\n%s", out)
	}
	if !strings.Contains(string(out), "fuzzwatch: one fuzz input ran longer than 50ms") {
		t.Fatalf("the crash does not say why; output:\n%s", out)
	}
}

func TestStartDisarms(t *testing.T) {
	stop := start(20 * time.Millisecond)
	stop()
	// Outlive the limit: a watchdog that was not disarmed would crash this
	// test binary here.
	time.Sleep(100 * time.Millisecond)
}
