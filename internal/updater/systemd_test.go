package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// fakeSystemd is a hand-written systemd and process table: daemon-reload
// loads the agent unit file, restart runs the version its link points at
// then, and reload does what the agent does on SIGHUP: a new process runs
// the version the link points at and writes the PID file. A missing unit
// file stands for a packaged unit under /lib ("packaged").
type fakeSystemd struct {
	mu       sync.Mutex
	root     string
	loaded   string
	running  string
	restarts int
	reloads  int
	pid      uint32
	enabled  []string
	calls    []string
	onState  func(f *fakeSystemd)
	// execStart is the loaded unit's command line, startedWith the one
	// the running agent was started with.
	execStart, startedWith []string
	// noTakeover: on reload, the new process fails before it takes over
	// and the old one keeps running; reloadRuns: the new process runs
	// this version instead of the linked one.
	noTakeover bool
	reloadRuns string
	// shutdown is what ShuttingDown reports: false, true, or an error.
	shutdown error
	down     bool
	// onShutdownQuery runs when ShuttingDown is called.
	onShutdownQuery func()
	// agentLoad is the agent unit's LoadState ("" unless a test sets it).
	agentLoad string
	// others are the states of units other than the agent's (inactive
	// and without a unit file unless set).
	others map[string]install.UnitState
}

var linkRE = regexp.MustCompile(`versions/([^/]+)/bin/teleport$`)

func (f *fakeSystemd) call(s string) { f.calls = append(f.calls, s) }

// linked is the version the agent's link points at, "" for none.
func (f *fakeSystemd) linked() string {
	target, err := os.Readlink(filepath.Join(f.root, "usr/local/bin/teleport"))
	if m := linkRE.FindStringSubmatch(target); err == nil && m != nil {
		return m[1]
	}
	return ""
}

func (f *fakeSystemd) DaemonReload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("reload")
	f.loaded, f.execStart = "packaged", nil
	b, err := os.ReadFile(filepath.Join(f.root, "etc/systemd/system/teleport.service"))
	if err != nil {
		return nil
	}
	f.loaded = f.linked()
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "ExecStart="); ok {
			f.execStart = strings.Fields(rest)
		}
	}
	return nil
}

func (f *fakeSystemd) Start(ctx context.Context, unit string) error {
	f.call("start " + unit)
	return ctx.Err()
}

func (f *fakeSystemd) Restart(ctx context.Context, unit string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = "packaged"
	if f.loaded != "packaged" {
		f.running = f.linked()
	}
	f.call("restart " + f.running)
	f.startedWith = f.execStart
	f.restarts++
	f.newProcess()
	return nil
}

// newProcess gives the agent a new main PID, written to the PID file.
func (f *fakeSystemd) newProcess() {
	f.pid++
	os.MkdirAll(filepath.Join(f.root, "run"), 0o755)
	os.WriteFile(filepath.Join(f.root, "run/teleport.pid"), fmt.Appendf(nil, "%d\n", f.pid+100), 0o644)
}

func (f *fakeSystemd) Reload(ctx context.Context, unit string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running == "" {
		f.call("reload-refused")
		return fmt.Errorf("reload %s: %w: result %q", unit, install.ErrJobFailed, "failed")
	}
	f.reloads++
	switch {
	case f.noTakeover:
		f.call("handover-failed")
		return nil
	case f.reloadRuns != "":
		f.running = f.reloadRuns
	default:
		f.running = f.linked()
	}
	f.call("handover " + f.running)
	f.newProcess()
	return nil
}

func (f *fakeSystemd) Stop(ctx context.Context, unit string) error {
	f.call("stop " + unit)
	if unit == AgentUnit {
		f.running = ""
	}
	return ctx.Err()
}

func (f *fakeSystemd) ResetFailed(ctx context.Context, unit string) error {
	f.call("reset-failed")
	return ctx.Err()
}

func (f *fakeSystemd) Enable(ctx context.Context, units ...string) error {
	f.enabled = append(f.enabled, units...)
	return ctx.Err()
}

func (f *fakeSystemd) Disable(ctx context.Context, units ...string) error {
	for _, u := range units {
		f.call("disable " + u)
		f.enabled = slices.DeleteFunc(f.enabled, func(e string) bool { return e == u })
	}
	return ctx.Err()
}

func (f *fakeSystemd) State(ctx context.Context, unit string) (install.UnitState, error) {
	if f.onState != nil {
		f.onState(f)
	}
	if err := ctx.Err(); err != nil {
		return install.UnitState{}, err
	}
	if unit != AgentUnit {
		if st, ok := f.others[unit]; ok {
			return st, nil
		}
		return install.UnitState{ActiveState: "inactive", SubState: "dead", LoadState: "not-found"}, nil
	}
	st := install.UnitState{ActiveState: "inactive", SubState: "dead", LoadState: f.agentLoad}
	if slices.Contains(f.enabled, unit) {
		st.UnitFileState = "enabled"
	}
	if f.running != "" {
		st.ActiveState, st.SubState, st.MainPID = "active", "running", f.pid+100
	}
	return st, nil
}

// The process table: only the agent's main process.

func (f *fakeSystemd) Alive(pid int) bool { return f.running != "" && pid == int(f.pid+100) }

func (f *fakeSystemd) Exe(pid int) string {
	if !f.Alive(pid) {
		return filepath.Join(f.root, "no such process")
	}
	return filepath.Join(install.New(f.root).VersionDir(f.running), "bin", "teleport")
}

func (f *fakeSystemd) Cmdline(pid int) ([]string, error) {
	if !f.Alive(pid) {
		return nil, fmt.Errorf("no process %d", pid)
	}
	return f.startedWith, nil
}

func (f *fakeSystemd) ShuttingDown(ctx context.Context) (bool, error) {
	if f.onShutdownQuery != nil {
		f.onShutdownQuery()
	}
	if f.shutdown != nil {
		return false, f.shutdown
	}
	return f.down, ctx.Err()
}

func (f *fakeSystemd) Close() {}

// withSystemd makes the test root look like a systemd host driven by a fake.
func withSystemd(e *testEnv, u *Updater) *fakeSystemd {
	os.MkdirAll(filepath.Join(e.root, "run/systemd/system"), 0o755)
	// The agent is configured, so that an install starts it.
	os.WriteFile(filepath.Join(e.root, "etc/teleport.yaml"), []byte("version: v3\n"), 0o600)
	f := &fakeSystemd{root: e.root}
	u.Systemd = func(context.Context) (install.Systemd, error) { return f, nil }
	u.Procs = f
	u.Health = install.HealthOptions{Window: 20 * time.Millisecond, Max: 2 * time.Second, Poll: 5 * time.Millisecond}
	return f
}

// newSystemdHost is installedHost driven by a fake systemd (set up before
// the install, which writes and starts the units).
func newSystemdHost(t *testing.T, releases ...pub) (*testEnv, *Updater, *fakeSystemd) {
	t.Helper()
	var sd *fakeSystemd
	e, u := installedHost(t, func(e *testEnv, u *Updater) { sd = withSystemd(e, u) }, releases...)
	return e, u, sd
}

func TestSystemdUpdateAndRollback(t *testing.T) {
	e, u, sd := newSystemdHost(t, pub{"2.0.0", false}, pub{"3.0.0", true})
	if sd.running != "1.0.0" || !slices.Contains(sd.enabled, UpdaterTimerUnit) {
		t.Fatalf("after install: running %q, enabled %v", sd.running, sd.enabled)
	}
	for _, unit := range []string{AgentUnit, UpdaterUnit, UpdaterTimerUnit} {
		if _, err := os.Stat(filepath.Join(e.root, "etc/systemd/system", unit)); err != nil {
			t.Errorf("unit %s not written: %v", unit, err)
		}
	}
	e.setTarget("2.0.0", true, 0)
	if _, err := u.Update(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if sd.running != "2.0.0" {
		t.Fatalf("after update: running %q", sd.running)
	}
	sd.calls = nil
	e.setTarget("3.0.0", true, 0)
	_, err := u.Update(context.Background(), false)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("broken 3.0.0: %v", err)
	}
	// The switch hands over to a 3.0.0 process by a reload. The way back
	// reloads the units once, after the revert, then clears the failed
	// state before the restart (the process that runs is 3.0.0's).
	want := []string{"reload", "handover 3.0.0", "reload", "reset-failed", "restart 2.0.0"}
	if !slices.Equal(sd.calls, want) {
		t.Fatalf("systemd calls %v, want %v", sd.calls, want)
	}
	cfg := e.config()
	if sd.running != "2.0.0" || cfg.Status.Active != "2.0.0" || !cfg.Status.IsSkipped("3.0.0") || cfg.Status.Switching != "" {
		t.Fatalf("after rollback: running %q, status %+v", sd.running, cfg.Status)
	}
}

// An interrupted run (SIGTERM during the health check) is not the new
// version's fault: the host goes back, nothing is skip-listed or pruned,
// and the next run can take the version.
func TestSystemdInterruptedHealthCheck(t *testing.T) {
	e, u, sd := newSystemdHost(t, pub{"2.0.0", false})

	ctx, cancel := context.WithCancel(context.Background())
	sd.onState = func(f *fakeSystemd) {
		if f.running == "2.0.0" {
			cancel()
		}
	}
	e.setTarget("2.0.0", true, 0)
	_, err := u.Update(ctx, true)
	sd.onState = nil
	if !errors.Is(err, ErrSwitch) {
		t.Fatalf("interrupted update: %v", err)
	}
	cfg := e.config()
	if cfg.Status.IsSkipped("2.0.0") || cfg.Status.Active != "1.0.0" || sd.running != "1.0.0" || cfg.Status.Switching != "" {
		t.Fatalf("after interruption: running %q, status %+v", sd.running, cfg.Status)
	}
	if _, ok, _ := install.New(e.root).Installed("2.0.0"); !ok {
		t.Fatal("the interrupted version was pruned")
	}
	if _, err := u.Update(context.Background(), true); err != nil || sd.running != "2.0.0" {
		t.Fatalf("next run: %v, running %q", err, sd.running)
	}
}

// A shutdown that stops the agent during the health check, before this run
// gets its SIGTERM, is not the new version's fault; nor is it when systemd
// cannot say whether it is shutting down and the run is then stopped. When
// systemd cannot say and the run goes on, or says it is running, the failed
// check counts and the version is skip-listed.
func TestSystemdShutdownDuringHealthCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		down    bool
		err     error
		stopRun bool // the run's context ends when systemd is asked
		skipped bool
		wantErr error
	}{
		{name: "shutting down", down: true, wantErr: ErrSwitch},
		{name: "cannot tell, run stopped", err: errors.New("dbus: connection closed by user"), stopRun: true, wantErr: ErrSwitch},
		{name: "cannot tell", err: errors.New("dbus: connection closed by user"), skipped: true, wantErr: ErrRolledBack},
		{name: "running", skipped: true, wantErr: ErrRolledBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, u, sd := newSystemdHost(t, pub{"2.0.0", false})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The agent on 2.0.0 is stopped under the health check.
			sd.onState = func(f *fakeSystemd) {
				if f.running == "2.0.0" {
					f.running = ""
					f.down, f.shutdown = tc.down, tc.err
				}
			}
			if tc.stopRun {
				sd.onShutdownQuery = cancel
			}
			e.setTarget("2.0.0", true, 0)
			_, err := u.Update(ctx, true)
			sd.onState, sd.onShutdownQuery, sd.down, sd.shutdown = nil, nil, false, nil
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("update = %v, want %v", err, tc.wantErr)
			}
			cfg := e.config()
			if cfg.Status.IsSkipped("2.0.0") != tc.skipped || cfg.Status.Active != "1.0.0" || sd.running != "1.0.0" || cfg.Status.Switching != "" {
				t.Fatalf("after the failed health check: running %q, status %+v; want 2.0.0 skip-listed: %v", sd.running, cfg.Status, tc.skipped)
			}
		})
	}
}

// A run killed at any step of a switch that rolls back (systemd still
// running the broken version, or the links half swapped) is repaired by the
// next run, even with the window closed.
func TestSystemdKilledDuringRollbackIsRepaired(t *testing.T) {
	reached := stepsReached(t, true, true)
	for i, step := range AllSteps {
		if !slices.Contains(reached, step) {
			continue // not on the way back (TestAllStepsAreReported)
		}
		t.Run(string(step), func(t *testing.T) {
			e, u, sd := newSystemdHost(t, pub{"2.0.0", true})
			e.setTarget("2.0.0", true, 0)
			killed := e.updater()
			killed.Systemd, killed.Health = u.Systemd, u.Health
			killed.AfterStep = func(s Step) {
				if s == step {
					panic("SIGKILL")
				}
			}
			func() {
				defer func() { recover() }()
				killed.Update(context.Background(), true)
			}()
			// The switch marker is saved before the first link changes.
			switching := "2.0.0"
			if i < slices.Index(AllSteps, StepLinkBinary) {
				switching = ""
			}
			if cfg := e.config(); cfg.Status.Active != "1.0.0" || cfg.Status.Switching != switching {
				t.Fatalf("after kill: %+v, want switching %q", cfg.Status, switching)
			}
			e.setTarget("2.0.0", false, 0)
			if _, err := u.Update(context.Background(), false); err != nil {
				t.Fatalf("next run: %v", err)
			}
			cfg := e.config()
			if sd.running != "1.0.0" || sd.loaded != "1.0.0" || cfg.Status.Switching != "" || e.linked() != "1.0.0" {
				t.Fatalf("not repaired: running %q loaded %q status %+v", sd.running, sd.loaded, cfg.Status)
			}
		})
	}
}

// A unit rendered differently (a newer teleport-update) is rewritten but
// does not restart the agent outside the window.
func TestSystemdReconcileDoesNotRestartOutsideWindow(t *testing.T) {
	e, u, sd := newSystemdHost(t)
	timer := filepath.Join(e.root, "etc/systemd/system", UpdaterTimerUnit)
	b, _ := os.ReadFile(timer)
	os.WriteFile(timer, []byte(strings.Replace(string(b), "RandomizedDelaySec", "#RandomizedDelaySec", 1)), 0o644)
	agent := filepath.Join(e.root, "etc/systemd/system", AgentUnit)
	b, _ = os.ReadFile(agent)
	os.WriteFile(agent, append(b, []byte("# edited\n")...), 0o644)
	restarts := sd.restarts
	e.setTarget("2.0.0", false, 0)
	if res, err := u.Update(context.Background(), false); err != nil || res.Outcome != OutcomeWindowClosed {
		t.Fatalf("update: %v %v", res, err)
	}
	if sd.restarts != restarts {
		t.Fatalf("agent restarted outside the window (%d -> %d)", restarts, sd.restarts)
	}
	if got, _ := os.ReadFile(timer); strings.Contains(string(got), "#RandomizedDelaySec") {
		t.Fatal("timer unit not rewritten")
	}
}

// A first install that fails its health check brings back the agent that
// ran before (e.g. a packaged one) instead of leaving the host without.
func TestSystemdFailedFirstInstallRestoresPreviousAgent(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	sd := withSystemd(e, u)
	sd.loaded, sd.running = "packaged", "packaged"
	e.publish("1.0.0", true)
	_, err := u.Install(context.Background(), InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL, Version: "1.0.0"})
	if !errors.Is(err, ErrHealth) {
		t.Fatalf("broken first install: %v", err)
	}
	if sd.running != "packaged" {
		t.Fatalf("the previous agent was not restored: running %q (calls %v)", sd.running, sd.calls)
	}
	if _, err := os.Stat(filepath.Join(e.root, "etc/systemd/system", AgentUnit)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("our unit left behind: %v", err)
	}
	cfg := e.config()
	if cfg.Status.Active != "" || cfg.Spec.Proxy != e.proxyAddr() || !cfg.Status.IsSkipped("1.0.0") {
		t.Fatalf("after refused first install: %+v", cfg)
	}
}

func TestReinstallFollowsUpdateRules(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	for _, v := range []string{"1.0.0", "2.0.0", "3.0.0"} {
		e.publish(v, v == "3.0.0")
	}
	e.install(u, "2.0.0")
	ctx := context.Background()
	// A proxy downgrade to a version never run here is refused even
	// through install.
	e.setTarget("1.0.0", true, 0)
	if _, err := u.Install(ctx, InstallRequest{Proxy: e.proxyAddr()}); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("reinstall with a proxy downgrade: %v", err)
	}
	// A skip-listed proxy target is refused; naming it retries it.
	e.setTarget("3.0.0", true, 0)
	if _, err := u.Update(ctx, true); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("broken update: %v", err)
	}
	if _, err := u.Install(ctx, InstallRequest{Proxy: e.proxyAddr()}); !errors.Is(err, ErrSkipped) {
		t.Fatalf("reinstall of a skipped target: %v", err)
	}
	if _, err := u.Install(ctx, InstallRequest{Version: "3.0.0"}); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("admin install of 3.0.0 should be tried (and roll back): %v", err)
	}
	if got := e.config().Status.Active; got != "2.0.0" {
		t.Fatalf("active %s", got)
	}
}

func TestPinnedSkippedVersionIsNotRetried(t *testing.T) {
	e, u := installedHost(t, nil, pub{"2.0.0", true})
	ctx := context.Background()
	if _, err := u.Pin(ctx, "2.0.0"); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("pin to a broken version: %v", err)
	}
	// Pin failed: the host is not pinned to the broken version.
	cfg := e.config()
	if cfg.Spec.Pinned || cfg.Status.Active != "1.0.0" {
		t.Fatalf("after failed pin: %+v", cfg)
	}
	// A host pinned by hand to a skipped version does not loop.
	cfg.Spec.Pinned, cfg.Spec.PinnedVersion = true, "2.0.0"
	SaveConfig(install.New(e.root).StatePath(), cfg)
	hits := e.cdn.Hits(e.artifact("2.0.0").TarballName())
	res, err := u.Update(ctx, false)
	if err != nil || res.Outcome != OutcomeSkipped || e.cdn.Hits(e.artifact("2.0.0").TarballName()) != hits {
		t.Fatalf("pinned to a skipped version: %v %v", res, err)
	}
}

func TestRollbackWithoutBackup(t *testing.T) {
	_, u := installedHost(t, nil)
	if _, err := u.Rollback(context.Background()); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("rollback without backup: %v", err)
	}
}
