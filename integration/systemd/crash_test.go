package systemd

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/updater"
)

// crashHealthWindow is the health window of the runs below: every case
// passes one or two health checks of a good version, so it is kept short.
const crashHealthWindow = "3s"

// crashHealthTimeout bounds the wait for v3, which never takes over after
// a reload.
const crashHealthTimeout = "10s"

// stableFor is how long the agent's MainPID and NRestarts must stay put
// after the recovery run.
const stableFor = 2 * time.Second

// crashEnv is the variable the crashtest build reads (cmd/teleport-update/crashhook.go).
const crashEnv = "TELEPORT_UPDATE_CRASH_AT"

var crashtestCLI once

// crashtestBinary returns the teleport-update CLI built with -tags
// crashtest, statically.
func crashtestBinary(t *testing.T) string {
	return crashtestCLI.get(t, func() (string, error) {
		out := filepath.Join(buildDir, "teleport-update-crashtest")
		return out, goTool("build", "-tags", "crashtest", "-o", out, "./cmd/teleport-update")
	})
}

// crashPaths says, for every step of updater.AllSteps, on which paths
// TestCrashAtEveryStep kills the run there: false on the way to a healthy
// version, true on the way back from one that exits at start. The steps
// before the switch (unpack, download, rename, extract) are the same on both paths
// and run once; TestE2ECrashAtEveryStep in cmd/teleport-update runs them
// on both without systemd.
var crashPaths = map[updater.Step][]bool{
	updater.StepUnpack:          {false},
	updater.StepDownload:        {false},
	updater.StepRename:          {false},
	updater.StepExtract:         {false},
	updater.StepLinkBinary:      {false, true},
	updater.StepLink:            {false, true},
	updater.StepUnits:           {false, true},
	updater.StepReload:          {false, true},
	updater.StepRestart:         {false, true},
	updater.StepState:           {false}, // only a healthy version is committed
	updater.StepRevert:          {true},  // only a failed one is reverted
	updater.StepPreviousReload:  {true},
	updater.StepPreviousRestart: {true},
}

// TestCrashCasesCoverAllSteps: TestCrashAtEveryStep kills the run at every
// step an update reports, on a real systemd.
func TestCrashCasesCoverAllSteps(t *testing.T) {
	for _, s := range updater.AllSteps {
		if len(crashPaths[s]) == 0 {
			t.Errorf("no crash case for step %q", s)
		}
	}
	for s := range crashPaths {
		if !slices.Contains(updater.AllSteps, s) {
			t.Errorf("crash case for %q, which is not in updater.AllSteps", s)
		}
	}
}

// TestCrashAtEveryStep kills teleport-update with SIGKILL right after each
// step of a version switch (updater.AllSteps, see crashPaths), on a real
// systemd, and checks that the host is usable right after the kill and
// that the next run finishes the job: on the success path (v1 -> v2, good)
// the host ends on v2; on the rollback path (v1 -> v3, which exits at
// start) it ends on v1 with v3 skipped. Each case has its own container.
func TestCrashAtEveryStep(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	for _, step := range updater.AllSteps {
		for _, rollback := range crashPaths[step] {
			name := string(step)
			if rollback {
				name = "rollback-" + name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				testCrashAt(t, step, rollback)
			})
		}
	}
}

func testCrashAt(t *testing.T, step updater.Step, rollback bool) {
	start := time.Now()
	cli := crashtestBinary(t)
	c := sharedCDN(t)
	px := newProxy(t, v1)
	h := bootHost(t, prepareForCLI(cli, c))
	target, want := v2, v2
	if rollback {
		target, want = v3, v1 // v3 exits at start
	}

	h.mustRun(cliPath, "install", "--proxy", px.addr(), "--base-url", c.srv.URL, "--no-census", "--health-window", crashHealthWindow, "--health-timeout", crashHealthTimeout)
	if got := h.runningVersion(); got != v1 {
		t.Fatalf("agent runs %s after install, want %s", got, v1)
	}
	// The timer must not start an update run of its own in between.
	h.mustRun("systemctl", "stop", updaterTimer)
	installed := time.Now()

	// The run that gets killed.
	px.setTarget(target)
	o, e, err := h.run("env", crashEnv+"="+string(step), cliPath, "update", "--now", "--health-window", crashHealthWindow, "--health-timeout", crashHealthTimeout)
	if !killed(err) {
		t.Fatalf("update to %s with %s=%s was not killed (%v)\nstdout:\n%s\nstderr:\n%s", target, crashEnv, step, err, o, e)
	}
	crashed := time.Now()

	// Right after the kill: update.yaml parses and its active version runs.
	st := h.status()
	if st.Active == "" {
		t.Fatalf("no active version in update.yaml after the kill at %s", step)
	}
	if got := h.mustRun(versionsDir+"/"+st.Active+"/bin/teleport", "version"); !strings.Contains(got, "v"+st.Active) {
		t.Fatalf("the active version %s prints %q after the kill at %s", st.Active, got, step)
	}
	p := h.show(agentUnit, "ActiveState", "SubState", "MainPID", "NeedDaemonReload")
	t.Logf("Killed after %q: update.yaml says active %s, backup %s, skip %q; %s is %s/%s (MainPID %s, NeedDaemonReload %s).",
		step, st.Active, st.Backup, st.Skip, agentUnit, p["ActiveState"], p["SubState"], p["MainPID"], p["NeedDaemonReload"])
	pidAfterCrash := p["MainPID"]

	// The next run finishes the job.
	o, e, err = h.run(cliPath, "update", "--now", "--health-window", crashHealthWindow, "--health-timeout", crashHealthTimeout)
	t.Logf("The recovery run said (err %v):\n%s%s", err, o, e)
	if !rollback && err != nil {
		t.Fatalf("recovery update to %s: %v", target, err)
	}
	recovered := time.Now()

	st = h.status()
	if st.Active != want {
		t.Fatalf("active version after the recovery run is %q, want %s", st.Active, want)
	}
	if rollback && !slices.Contains(st.Skip, target) {
		t.Errorf("%s is not on the skip list after the recovery run: skip %q", target, st.Skip)
	}
	if got := h.runningVersion(); got != want {
		t.Errorf("agent runs %s after the recovery run, want %s", got, want)
	}
	checkStable(h)
	if step == updater.StepState && !rollback {
		// update.yaml already recorded v2: the recovery has nothing to do
		// and must not restart the agent.
		if pid := h.show(agentUnit, "MainPID")["MainPID"]; pid != pidAfterCrash {
			t.Errorf("the recovery run restarted the agent (MainPID %s -> %s) though v2 was committed", pidAfterCrash, pid)
		}
	}
	checkConsistent(h, want)

	if rollback {
		// The skipped version is not tried again.
		if o, e, err := h.run(cliPath, "update", "--now", "--health-window", crashHealthWindow, "--health-timeout", crashHealthTimeout); err != nil {
			t.Errorf("update with %s skipped: %v\nstdout:\n%s\nstderr:\n%s", target, err, o, e)
		}
		if got := h.runningVersion(); got != want {
			t.Errorf("agent runs %s after an update to the skipped %s, want %s", got, target, want)
		}
	}
	t.Logf("Timings: boot+install %v, killed run %v, recovery run %v, total %v.",
		installed.Sub(start).Round(time.Millisecond), crashed.Sub(installed).Round(time.Millisecond),
		recovered.Sub(crashed).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestCrashAtRevertThenTargetBack kills teleport-update right after it put
// the units and links back to v1 during a rollback from v3 (before the
// daemon-reload and the restart), then moves the proxy's target back to v1.
// update.yaml, the links and the unit files then all say v1 while systemd
// still has the v3 unit loaded (NeedDaemonReload=yes) and the agent
// crash-loops on v3; the next run must notice that and restart the agent on
// v1 even though it has nothing to update. (With a reconcile that compares
// only files, it reports "up to date" and leaves the agent down.)
func TestCrashAtRevertThenTargetBack(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	h, px := installedHost(t, crashtestBinary(t), crashHealthWindow)
	h.mustRun("systemctl", "stop", updaterTimer)

	px.setTarget(v3)
	if o, e, err := h.run("env", crashEnv+"="+string(updater.StepRevert), cliPath, "update", "--now", "--health-window", crashHealthWindow, "--health-timeout", crashHealthTimeout); !killed(err) {
		t.Fatalf("update to %s was not killed at revert (%v)\nstdout:\n%s\nstderr:\n%s", v3, err, o, e)
	}
	px.setTarget(v1)
	o, e, err := h.run(cliPath, "update", "--now", "--health-window", crashHealthWindow, "--health-timeout", crashHealthTimeout)
	t.Logf("The next run, with the target back on %s, said (err %v):\n%s%s", v1, err, o, e)
	if err != nil {
		t.Errorf("the next run failed: %v", err)
	}
	if got := h.runningVersion(); got != v1 {
		t.Errorf("agent runs %s, want %s", got, v1)
	}
	checkStable(h)
	checkConsistent(h, v1)
}

// killed reports whether a command run through host.run died of SIGKILL:
// nsenter passes the signal on, a shell reports exit status 137.
func killed(err error) bool {
	var ee interface {
		ExitCode() int
		Sys() any
	}
	if !errors.As(err, &ee) {
		return false
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal() == syscall.SIGKILL
	}
	return ee.ExitCode() == 128+int(syscall.SIGKILL)
}

// checkStable checks that the agent keeps its MainPID and NRestarts for
// stableFor and that systemd has loaded the unit file on disk.
func checkStable(h *host) {
	h.t.Helper()
	props := []string{"ActiveState", "SubState", "MainPID", "NRestarts", "NeedDaemonReload"}
	before := h.show(agentUnit, props...)
	time.Sleep(stableFor)
	after := h.show(agentUnit, props...)
	if after["ActiveState"] != "active" || after["SubState"] != "running" ||
		after["MainPID"] != before["MainPID"] || after["NRestarts"] != before["NRestarts"] {
		h.t.Errorf("%s not stable over %v: %v -> %v", agentUnit, stableFor, before, after)
	}
	if after["NeedDaemonReload"] != "no" {
		h.t.Errorf("%s: systemd has not loaded the unit file on disk (NeedDaemonReload=%s)", agentUnit, after["NeedDaemonReload"])
	}
}

// checkConsistent checks the files of a host whose active version is
// active: no staging leftovers, every version directory complete, the link
// and the unit (on disk and as loaded) on active.
func checkConsistent(h *host, active string) {
	h.t.Helper()
	if left := strings.TrimSpace(h.mustRun("sh", "-c", "ls -A /var/lib/teleport-update/.staging 2>/dev/null || true")); left != "" {
		h.t.Errorf("staging leftovers in /var/lib/teleport-update/.staging: %q", strings.Fields(left))
	}
	for _, v := range h.versions() {
		if _, _, err := h.run("test", "-f", versionsDir+"/"+v+"/.verified"); err != nil {
			h.t.Errorf("version directory %s has no .verified marker", v)
		}
	}
	bin := versionsDir + "/" + active + "/bin/teleport"
	if got := strings.TrimSpace(h.mustRun("readlink", "-f", agentLinkPath)); got != bin {
		h.t.Errorf("%s resolves to %s, want %s", agentLinkPath, got, bin)
	}
	// The unit runs the link, whatever the version.
	unit := h.mustRun("cat", "/etc/systemd/system/"+agentUnit)
	var execStart []string
	for _, line := range strings.Split(unit, "\n") {
		if strings.HasPrefix(line, "ExecStart=") {
			execStart = append(execStart, line)
		}
	}
	if len(execStart) != 1 || !strings.HasPrefix(execStart[0], "ExecStart="+agentLinkPath+" ") {
		h.t.Errorf("%s on disk: ExecStart lines %q, want one running %s", agentUnit, execStart, agentLinkPath)
	}
	if got := h.show(agentUnit, "ExecStart")["ExecStart"]; !strings.Contains(got, "path="+agentLinkPath+" ") {
		h.t.Errorf("%s as loaded by systemd: ExecStart=%s, want path=%s", agentUnit, got, agentLinkPath)
	}
}
