package updater

import (
	"context"
	"slices"
	"testing"
)

// stepsReached runs an update from 1.0.0 to 2.0.0 and returns the steps
// the hook saw, in order: with or without systemd, and with a 2.0.0 that
// is healthy or that fails its health check (the way back).
func stepsReached(t *testing.T, systemd, rollback bool) []Step {
	t.Helper()
	before := func(e *testEnv, u *Updater) {
		if systemd {
			withSystemd(e, u)
		}
	}
	e, u := installedHost(t, before, pub{"2.0.0", rollback})
	var seen []Step
	u.AfterStep = func(s Step) { seen = append(seen, s) }
	e.setTarget("2.0.0", true, 0)
	if _, err := u.Update(context.Background(), true); (err != nil) != rollback {
		t.Fatalf("update (rollback %v): %v", rollback, err)
	}
	return seen
}

// TestAllStepsAreReported: AllSteps lists exactly the steps an update
// reports, in the order it reaches them; without systemd it reaches
// exactly those that do not need systemd. The crash suites iterate
// AllSteps, so this is what makes them cover every step.
func TestAllStepsAreReported(t *testing.T) {
	union := func(systemd bool) []Step {
		var all []Step
		for _, rollback := range []bool{false, true} {
			seen := stepsReached(t, systemd, rollback)
			for i, s := range seen {
				if !slices.Contains(AllSteps, s) {
					t.Errorf("step %q is not in AllSteps", s)
				}
				if i > 0 && slices.Index(AllSteps, s) < slices.Index(AllSteps, seen[i-1]) {
					t.Errorf("step %q comes after %q, but AllSteps lists it before (systemd %v, rollback %v)", s, seen[i-1], systemd, rollback)
				}
			}
			all = append(all, seen...)
		}
		return all
	}
	withSD, withoutSD := union(true), union(false)
	for _, s := range AllSteps {
		if !slices.Contains(withSD, s) {
			t.Errorf("step %q is never reached on a host with systemd", s)
		}
		if got := slices.Contains(withoutSD, s); got == s.NeedsSystemd() {
			t.Errorf("step %q reached without systemd: %v, but NeedsSystemd says %v", s, got, s.NeedsSystemd())
		}
	}
}

// Every binary's link is its own step: a kill there leaves the links
// half swapped.
func TestLinkBinaryStepPerBinary(t *testing.T) {
	seen := stepsReached(t, false, false)
	n := 0
	for _, s := range seen {
		if s == StepLinkBinary {
			n++
		}
	}
	if n != 2 { // teleport and tctl
		t.Errorf("%d %s steps for two binaries: %v", n, StepLinkBinary, seen)
	}
}
