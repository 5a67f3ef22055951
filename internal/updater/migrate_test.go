package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/safeperm"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// toLegacyLayout turns the install under root into an earlier build's
// (fixture.ToLegacyLayout).
func toLegacyLayout(t *testing.T, root string) {
	t.Helper()
	if err := fixture.ToLegacyLayout(root); err != nil {
		t.Fatal(err)
	}
}

// checkMigrated checks that nothing of ours is left in Teleport's data
// directory, which itself stays, and that links and units name the new
// tree.
func checkMigrated(t *testing.T, root string) {
	t.Helper()
	oldDir := filepath.Join(root, "var/lib/teleport")
	entries, err := os.ReadDir(oldDir)
	if err != nil {
		t.Fatalf("Teleport's data directory: %v", err)
	}
	for _, e := range entries {
		if e.Name() != "host_uuid" {
			t.Errorf("left in Teleport's data directory: %s", e.Name())
		}
	}
	for _, name := range []string{"teleport", "tctl"} {
		target, err := os.Readlink(filepath.Join(root, "usr/local/bin", name))
		if err != nil || !strings.Contains(target, "/var/lib/teleport-update/versions/") {
			t.Errorf("link %s -> %q (%v), want into the new tree", name, target, err)
		}
	}
	for _, unit := range []string{AgentUnit, UpdaterUnit} {
		b, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", unit))
		if err == nil && strings.Contains(string(b), "/var/lib/teleport/") {
			t.Errorf("%s still names the old tree:\n%s", unit, b)
		}
	}
}

// legacyHost returns a host with systemd on which an earlier build
// installed 1.0.0, updated to 2.0.0 and pinned it, with Teleport's own
// data in its data directory.
func legacyHost(t *testing.T) (*testEnv, *Updater, *fakeSystemd) {
	t.Helper()
	e, u, sd := newSystemdHost(t, pub{"2.0.0", false}, pub{"3.0.0", false})
	if _, err := u.Pin(context.Background(), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	toLegacyLayout(t, e.root)
	if err := os.WriteFile(filepath.Join(e.root, "var/lib/teleport/host_uuid"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.setTarget("3.0.0", true, 0)
	return e, u, sd
}

// TestMigratePinnedHostKeepsPin: re-running install on a host an earlier
// build installed and pinned keeps the pin (without the move it would be a
// first install, which takes the proxy's target), and the move never
// restarts the agent.
func TestMigratePinnedHostKeepsPin(t *testing.T) {
	e, u, sd := legacyHost(t)
	restarts := sd.restarts
	if cfg, exists, err := u.ReadConfig(); err != nil || !exists || cfg.Status.Active != "2.0.0" {
		t.Fatalf("status before the move: %+v %v %v", cfg, exists, err)
	}
	cfg, err := u.Install(context.Background(), InstallRequest{Proxy: e.proxyAddr()})
	if err != nil {
		t.Fatalf("re-install: %v", err)
	}
	if !cfg.Spec.Pinned || cfg.Status.Active != "2.0.0" || e.linked() != "2.0.0" {
		t.Fatalf("after re-install: spec %+v status %+v linked %s; want pinned at 2.0.0", cfg.Spec, cfg.Status, e.linked())
	}
	if sd.restarts != restarts || sd.running != "2.0.0" || sd.loaded != "2.0.0" {
		t.Errorf("agent restarted by the move: restarts %d -> %d, running %s, loaded %s", restarts, sd.restarts, sd.running, sd.loaded)
	}
	if vs, _ := u.Tree.Versions(); !slices.Equal(vs, []string{"1.0.0", "2.0.0"}) {
		t.Errorf("versions in the new tree: %v, want the backup and the active", vs)
	}
	checkMigrated(t, e.root)
}

// TestMigrateKilledAtEveryStep kills the move at each of its steps: the
// host stays usable (status reads the pinned state, the linked teleport
// runs, the agent is never restarted) and the next run finishes the move.
func TestMigrateKilledAtEveryStep(t *testing.T) {
	var cases []string
	for _, s := range MigrationSteps {
		cases = append(cases, string(s))
	}
	// Two versions move: also kill after the second.
	cases = append(cases, string(StepMigrateVersion)+"#2", string(StepMigrateRemoveVersion)+"#2")
	for _, at := range cases {
		t.Run(at, func(t *testing.T) {
			e, u, sd := legacyHost(t)
			restarts := sd.restarts
			killed := e.updater()
			killed.Systemd, killed.Health = u.Systemd, u.Health
			step, nth := parseStepAt(at)
			seen := 0
			killed.AfterStep = func(s Step) {
				if s == step {
					if seen++; seen == nth {
						panic("SIGKILL")
					}
				}
			}
			func() {
				defer func() { recover() }()
				killed.Update(context.Background(), false)
				t.Fatalf("the run was not killed at %s", at)
			}()
			if cfg, exists, err := u.ReadConfig(); err != nil || !exists || cfg.Status.Active != "2.0.0" || !cfg.Spec.Pinned {
				t.Fatalf("status after the kill: %+v %v %v", cfg, exists, err)
			}
			checkLinkedRuns(t, e.root, "2.0.0")
			sd.calls = nil
			if _, err := u.Update(context.Background(), false); err != nil {
				t.Fatalf("next run: %v", err)
			}
			if cfg := e.config(); cfg.Status.Active != "2.0.0" || !cfg.Spec.Pinned || e.linked() != "2.0.0" {
				t.Fatalf("after the next run: %+v linked %s", cfg, e.linked())
			}
			if sd.restarts != restarts || sd.running != "2.0.0" {
				t.Errorf("agent restarted: %d -> %d, running %s", restarts, sd.restarts, sd.running)
			}
			// Killed before systemd reloaded the rewritten units: the next
			// run must reload them, though it finds them already written.
			if slices.Index(MigrationSteps, step) <= slices.Index(MigrationSteps, StepMigrateUnits) && !slices.Contains(sd.calls, "reload") {
				t.Errorf("the next run never reloaded systemd: calls %v", sd.calls)
			}
			checkMigrated(t, e.root)
			if left := e.stagingLeft(); len(left) > 0 {
				t.Errorf("staging left: %v", left)
			}
		})
	}
}

// parseStepAt splits "step#n"; n is 1 when absent.
func parseStepAt(at string) (Step, int) {
	s, n, ok := strings.Cut(at, "#")
	if !ok {
		return Step(s), 1
	}
	var i int
	fmt.Sscan(n, &i)
	return Step(s), i
}

// checkLinkedRuns checks that /usr/local/bin/teleport reaches a complete
// version v, in whichever tree.
func checkLinkedRuns(t *testing.T, root, v string) {
	t.Helper()
	real, err := filepath.EvalSymlinks(filepath.Join(root, "usr/local/bin/teleport"))
	if err != nil {
		t.Fatalf("linked teleport: %v", err)
	}
	if !strings.HasSuffix(real, "/versions/"+v+"/bin/teleport") {
		t.Fatalf("linked teleport is %s, want version %s", real, v)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(real)), ".verified")); err != nil {
		t.Fatalf("linked version is not complete: %v", err)
	}
}

// TestMigrateRefusesUnsafeLegacyTree: an old tree another user can write
// to is refused by name, before anything in it is read.
func TestMigrateRefusesUnsafeLegacyTree(t *testing.T) {
	e, u, _ := legacyHost(t)
	old := filepath.Join(e.root, "var/lib/teleport/versions")
	if err := os.Chmod(old, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := u.Update(context.Background(), false)
	if !errors.Is(err, safeperm.ErrUnsafe) || !strings.Contains(err.Error(), old) {
		t.Fatalf("update with a world-writable old tree = %v, want unsafe naming %s", err, old)
	}
	if _, err := os.Stat(install.New(e.root).StatePath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state moved from an unsafe tree: %v", err)
	}
}

// TestMigrationStepsAreReported: a move reports exactly MigrationSteps,
// in order (the per-version ones once per version).
func TestMigrationStepsAreReported(t *testing.T) {
	e, _, sd := legacyHost(t)
	u := e.updater()
	u.Systemd = func(context.Context) (install.Systemd, error) { return sd, nil }
	var seen []Step
	u.AfterStep = func(s Step) {
		if !slices.Contains(seen, s) && slices.Contains(MigrationSteps, s) {
			seen = append(seen, s)
		}
	}
	if _, err := u.Update(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, MigrationSteps) {
		t.Errorf("steps %v, want %v", seen, MigrationSteps)
	}
}
