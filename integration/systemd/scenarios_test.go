package systemd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// healthWindow is passed to install and update: long enough that the v4
// agent (crashes 5 s after it starts) fails inside it, short enough to keep
// the suite fast. healthTimeout bounds the wait for a new process to take
// over after a reload, which v3 (exits at start) never does.
const (
	healthWindow  = "8s"
	healthTimeout = "20s"
)

// TestScenarios runs the stories an operator cares about in order on one
// host through the real teleport-update binary: install v1; update to v2; update to v3, which
// exits at start, and get rolled back to v2; update to v4, which crashes
// after ~5 s, and get rolled back again; reboot, and find v2 running.
func TestScenarios(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	cli := teleportUpdateBinary(t)
	c := sharedCDN(t)
	px := newProxy(t, v1)
	h := bootHost(t, prepareForCLI(cli, c))

	update := func() (stdout, stderr string, err error) {
		return h.run(cliPath, "update", "--now", "--health-window", healthWindow, "--health-timeout", healthTimeout)
	}

	t.Run("1 install v1", func(t *testing.T) {
		h := &host{t: t, c: h.c}
		t.Logf("Installing: the proxy's target is %s; teleport-update install downloads, verifies and starts it.", v1)
		h.mustRun(cliPath, "install", "--proxy", px.addr(), "--base-url", c.srv.URL, "--no-census", "--health-window", healthWindow)
		if got := h.runningVersion(); got != v1 {
			t.Errorf("agent runs %s after install, want %s", got, v1)
		}
		st := h.status()
		if st.Active != v1 || st.Proxy != px.addr() || st.BaseURL != c.srv.URL {
			t.Errorf("status after install: active %q proxy %q base_url %q; want %q %q %q",
				st.Active, st.Proxy, st.BaseURL, v1, px.addr(), c.srv.URL)
		}
		if got := strings.TrimSpace(h.mustRun(agentLinkPath, "version")); !strings.Contains(got, "v"+v1) {
			t.Errorf("%s version prints %q, want v%s", agentLinkPath, got, v1)
		}
		if got := strings.TrimSpace(h.mustRun("systemctl", "is-enabled", agentUnit)); got != "enabled" {
			t.Errorf("%s is %q, want enabled", agentUnit, got)
		}
		// The timer (OnBootSec=1min) would otherwise start its own update
		// runs in the middle of the steps below; TestTimerUpdates covers it.
		h.mustRun("systemctl", "stop", updaterTimer)
	})
	if t.Failed() {
		return
	}

	t.Run("2 update to v2", func(t *testing.T) {
		h := &host{t: t, c: h.c}
		t.Logf("The proxy's target moves to %s; teleport-update update --now moves the links and reloads the agent, which hands over to %s.", v2, v2)
		px.setTarget(v2)
		o, e, err := update()
		if err != nil {
			t.Fatalf("update to v2: %v\nstdout:\n%s\nstderr:\n%s", err, o, e)
		}
		if !strings.Contains(o+e, "Reloaded the agent") || strings.Contains(o+e, "Restarting the agent") {
			t.Errorf("the update did not switch by a reload alone:\n%s%s", o, e)
		}
		if got := h.runningVersion(); got != v2 {
			t.Errorf("agent runs %s after update, want %s", got, v2)
		}
		if got := strings.TrimSpace(h.mustRun("readlink", "-f", agentLinkPath)); got != versionsDir+"/"+v2+"/bin/teleport" {
			t.Errorf("%s resolves to %s, want %s's binary", agentLinkPath, got, v2)
		}
		st := h.status()
		if st.Active != v2 || st.Backup != v1 {
			t.Errorf("status after update: active %q backup %q, want %q %q", st.Active, st.Backup, v2, v1)
		}
		if got := h.versions(); !slices.Equal(got, []string{v1, v2}) {
			t.Errorf("installed versions %q, want %q (v1 kept as backup)", got, []string{v1, v2})
		}
	})
	if t.Failed() {
		return
	}

	// Rollbacks: the update fails, the host ends on v2, healthy, and the
	// bad version is skipped.
	// v3 never takes over from the v2 process, which keeps running; v4
	// takes over and then crashes, so v2 is restarted.
	for _, tc := range []struct {
		name, version string
		keepsProcess  bool
	}{
		{name: "3 update to v3 that exits at start rolls back", version: v3, keepsProcess: true},
		{name: "4 update to v4 that crashes after 5s rolls back", version: v4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &host{t: t, c: h.c}
			pidBefore := h.show(agentUnit, "MainPID")["MainPID"]
			t.Logf("The proxy's target moves to the broken %s; the update must fail its health check and roll back to %s.", tc.version, v2)
			px.setTarget(tc.version)
			o, e, err := update()
			t.Logf("teleport-update update said:\n%s%s", o, e)
			if err == nil {
				t.Fatalf("update to %s succeeded, want a failure with rollback\nstdout:\n%s\nstderr:\n%s", tc.version, o, e)
			}
			if !strings.Contains(strings.ToLower(e), "roll") {
				t.Errorf("update to %s failed without saying it rolled back:\n%s", tc.version, e)
			}
			if got := h.runningVersion(); got != v2 {
				t.Errorf("agent runs %s after the failed update, want %s", got, v2)
			}
			switch pid := h.show(agentUnit, "MainPID")["MainPID"]; {
			case tc.keepsProcess && pid != pidBefore:
				t.Errorf("agent main PID %s -> %s: the %s process that kept serving was replaced", pidBefore, pid, v2)
			case !tc.keepsProcess && pid == pidBefore:
				t.Errorf("agent main PID %s unchanged: the update never moved it", pid)
			}
			st := h.status()
			if st.Active != v2 || !slices.Contains(st.Skip, tc.version) {
				t.Errorf("status after rollback: active %q skip %q; want %q with %q skipped", st.Active, st.Skip, v2, tc.version)
			}
			if st.LastUpdate == nil || st.LastUpdate.Success || st.LastUpdate.Target != tc.version {
				t.Errorf("last_update after rollback = %+v, want a failed update to %s", st.LastUpdate, tc.version)
			}
			if got := h.show(agentUnit, "ActiveState")["ActiveState"]; got != "active" {
				t.Errorf("%s is %s after rollback, want active", agentUnit, got)
			}
			if got := strings.TrimSpace(h.mustRun(agentLinkPath, "version")); !strings.Contains(got, "v"+v2) {
				t.Errorf("%s version prints %q after rollback, want v%s", agentLinkPath, got, v2)
			}

			// The skipped version is not tried again.
			o, e, err = update()
			if err != nil {
				t.Errorf("update with %s skipped: %v\nstdout:\n%s\nstderr:\n%s", tc.version, err, o, e)
			}
			if got := h.runningVersion(); got != v2 {
				t.Errorf("agent runs %s after an update to the skipped %s, want %s", got, tc.version, v2)
			}
		})
		if t.Failed() {
			return
		}
	}
	t.Run("5 after a reboot the agent runs v2 again", func(t *testing.T) {
		h := &host{t: t, c: h.c}
		t.Log("Rebooting the host: the enabled unit must bring the agent back on the active version.")
		before := h.status()
		if err := h.c.Reboot(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, commandTimeout, agentUnit+" to start after the reboot", func() bool {
			p := h.show(agentUnit, "ActiveState", "SubState")
			return p["ActiveState"] == "active" && p["SubState"] == "running"
		})
		if got := h.runningVersion(); got != v2 {
			t.Errorf("agent runs %s after the reboot, want %s", got, v2)
		}
		timer := h.show(updaterTimer, "ActiveState", "UnitFileState")
		if timer["ActiveState"] != "active" || timer["UnitFileState"] != "enabled" {
			t.Errorf("%s is %s/%s after the reboot, want active/enabled", updaterTimer, timer["ActiveState"], timer["UnitFileState"])
		}
		if st := h.status(); st.Active != before.Active || st.Backup != before.Backup || !slices.Equal(st.Skip, before.Skip) {
			t.Errorf("status after the reboot: active %q backup %q skip %q; before: %q %q %q",
				st.Active, st.Backup, st.Skip, before.Active, before.Backup, before.Skip)
		}
	})

	t.Logf("Final state, teleport-update status:\n%s", h.mustRun(cliPath, "status", "--offline"))
	t.Logf("systemctl status %s:\n%s", agentUnit, h.mustRun("systemctl", "status", "--no-pager", "--lines=5", agentUnit))
}

// TestTimerUpdates checks that install enables the update timer and that the
// timer's run (teleport-update.service, with its sandboxing) performs an
// update. The timer is made to fire at once with a drop-in; everything else
// is the rendered units as installed.
func TestTimerUpdates(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	h, px := installedHost(t, teleportUpdateBinary(t), "2s")
	if got := h.runningVersion(); got != v1 {
		t.Fatalf("agent runs %s after install, want %s", got, v1)
	}
	timer := h.show(updaterTimer, "ActiveState", "UnitFileState")
	if timer["ActiveState"] != "active" || timer["UnitFileState"] != "enabled" {
		t.Fatalf("%s is %s/%s after install, want active/enabled", updaterTimer, timer["ActiveState"], timer["UnitFileState"])
	}

	px.setTarget(v2)
	runsBefore := h.show(updaterUnit, "InvocationID")["InvocationID"]
	const dropIn = "[Timer]\nOnActiveSec=1s\nAccuracySec=1s\nRandomizedDelaySec=0\n"
	if err := writeFile(h.c.Root(), "/etc/systemd/system/"+updaterTimer+".d/fire-now.conf", []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	h.mustRun("systemctl", "daemon-reload")
	h.mustRun("systemctl", "restart", updaterTimer)

	waitFor(t, timerTimeout, "the timer's update run to finish", func() bool {
		p := h.show(updaterUnit, "InvocationID", "ActiveState")
		return p["InvocationID"] != runsBefore && p["ActiveState"] != "activating" && p["ActiveState"] != "active"
	})
	res := h.show(updaterUnit, "Result", "ExecMainStatus")
	if res["Result"] != "success" || res["ExecMainStatus"] != "0" {
		t.Fatalf("%s finished with result %s, exit status %s; want success, 0", updaterUnit, res["Result"], res["ExecMainStatus"])
	}
	if got := h.runningVersion(); got != v2 {
		t.Errorf("agent runs %s after the timer's run, want %s", got, v2)
	}
	// The sandboxed run can reload too (it reads the agent's command line
	// and PID file, and may not read its executable).
	j := h.c.Journal(updaterUnit)
	if !strings.Contains(j, "Reloaded the agent") || strings.Contains(j, "Restarting the agent") {
		t.Errorf("the timer's run did not switch by a reload alone:\n%s", j)
	}
	t.Logf("The sandboxed run could read the new process's executable: %v.", !strings.Contains(j, "Cannot read which binary"))
	if st := h.status(); st.Active != v2 || st.Backup != v1 {
		t.Errorf("status after the timer's run: active %q backup %q, want %q %q", st.Active, st.Backup, v2, v1)
	}
}

// TestInterruptedHealthCheck stops the timer's update run
// (teleport-update.service) while it checks the new version's health,
// first with systemctl stop, then by rebooting the host. Neither is the new
// version's fault: it must not be skip-listed, and the host must run what
// update.yaml says is active. After the stop the run itself goes back at
// once (its D-Bus connection outlives the cancelled run). At shutdown the
// agent may be stopped before the run gets its SIGTERM; the run asks
// systemd whether it is shutting down before it blames the version. The
// next run then finishes the update.
func TestInterruptedHealthCheck(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	h, px := installedHost(t, teleportUpdateBinary(t), "2s")
	h.mustRun("systemctl", "stop", updaterTimer)
	// The timer's run with a health window long enough to interrupt it.
	dropIn := "/etc/systemd/system/" + updaterUnit + ".d/long-health-check.conf"
	if err := writeFile(h.c.Root(), dropIn, []byte("[Service]\nExecStart=\nExecStart="+cliPath+" update --health-window 15s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.mustRun("systemctl", "daemon-reload")
	px.setTarget(v2)
	startInHealthCheck := func() {
		t.Helper()
		h.mustRun("systemctl", "start", "--no-block", updaterUnit)
		waitFor(t, timerTimeout, "the update run to restart the agent on "+v2, func() bool {
			// Not runningVersion: the process may go between its checks
			// while the run restarts it, which must not fail the test.
			p := h.show(agentUnit, "ActiveState", "SubState", "MainPID")
			if p["ActiveState"] != "active" || p["SubState"] != "running" || p["MainPID"] == "0" {
				return false
			}
			exe, _, err := h.run("readlink", "/proc/"+p["MainPID"]+"/exe")
			return err == nil && strings.TrimSpace(exe) == versionsDir+"/"+v2+"/bin/teleport"
		})
		if got := h.show(updaterUnit, "ActiveState")["ActiveState"]; got != "activating" {
			t.Fatalf("%s is %s with the agent on %s, want activating (in its health check)", updaterUnit, got, v2)
		}
	}
	checkNotBlamed := func(when string) {
		t.Helper()
		st := h.status()
		t.Logf("%s: active %q, backup %q, skip %q, last update %+v.", when, st.Active, st.Backup, st.Skip, st.LastUpdate)
		if slices.Contains(st.Skip, v2) {
			t.Errorf("%s: %s is skip-listed: %q", when, v2, st.Skip)
		}
		if got := h.runningVersion(); got != st.Active {
			t.Errorf("%s: the agent runs %s, update.yaml says %s is active", when, got, st.Active)
		}
	}

	startInHealthCheck()
	t.Log("Stopping the update run in the middle of the health check.")
	h.mustRun("systemctl", "stop", updaterUnit)
	checkNotBlamed("after systemctl stop")
	if got := h.runningVersion(); got != v1 {
		t.Errorf("after systemctl stop the agent runs %s, want %s (the run goes back)", got, v1)
	}

	startInHealthCheck()
	t.Log("Rebooting in the middle of the health check.")
	if err := h.c.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, commandTimeout, agentUnit+" to start after the reboot", func() bool {
		p := h.show(agentUnit, "ActiveState", "SubState")
		return p["ActiveState"] == "active" && p["SubState"] == "running"
	})
	checkNotBlamed("after the reboot")

	if err := os.Remove(filepath.Join(h.c.Root(), dropIn)); err != nil {
		t.Fatal(err)
	}
	h.mustRun("systemctl", "daemon-reload")
	if o, e, err := h.run(cliPath, "update", "--now", "--health-window", "2s"); err != nil {
		t.Fatalf("update after the interruptions: %v\nstdout:\n%s\nstderr:\n%s", err, o, e)
	}
	if got, st := h.runningVersion(), h.status(); got != v2 || st.Active != v2 || slices.Contains(st.Skip, v2) {
		t.Errorf("after the next update: agent runs %s, active %q, skip %q; want %s, not skipped", got, st.Active, st.Skip, v2)
	}
}
