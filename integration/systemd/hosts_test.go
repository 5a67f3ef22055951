package systemd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Teleport's older updater, as its package installs it: a timer that runs
// teleport-upgrade, enabled.
var (
	v1UpgradeService = []byte("[Unit]\nDescription=Teleport v1 upgrader (test stand-in)\n[Service]\nType=oneshot\nExecStart=/bin/true\n")
	v1UpgradeTimer   = []byte("[Unit]\nDescription=Teleport v1 upgrader timer (test stand-in)\n[Timer]\nOnCalendar=hourly\n[Install]\nWantedBy=timers.target\n")
)

const v1Timer = "teleport-upgrade.timer"

// TestUnconfiguredFirstInstall installs on a host whose agent has no
// /etc/teleport.yaml yet and that runs Teleport's older updater: install
// succeeds without starting or enabling the agent and says what to do
// next, turns the older updater's timer off and writes needrestart's
// drop-in; an update moves the files without starting the agent or
// skip-listing anything; once the admin writes the configuration and runs
// systemctl enable --now teleport, the agent runs the active version.
func TestUnconfiguredFirstInstall(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	cli := teleportUpdateBinary(t)
	c := sharedCDN(t)
	px := newProxy(t, v1)
	prepare := prepareUnconfigured(cli, c)
	h := bootHost(t, func(root string) error {
		if err := prepare(root); err != nil {
			return err
		}
		if err := writeFile(root, "/usr/lib/systemd/system/teleport-upgrade.service", v1UpgradeService, 0o644); err != nil {
			return err
		}
		if err := writeFile(root, "/usr/lib/systemd/system/"+v1Timer, v1UpgradeTimer, 0o644); err != nil {
			return err
		}
		wants := filepath.Join(root, "etc/systemd/system/timers.target.wants")
		if err := os.MkdirAll(wants, 0o755); err != nil {
			return err
		}
		return os.Symlink("/usr/lib/systemd/system/"+v1Timer, filepath.Join(wants, v1Timer))
	})
	waitFor(t, commandTimeout, v1Timer+" to be active after boot", func() bool {
		return h.show(v1Timer, "ActiveState")["ActiveState"] == "active"
	})

	out := h.mustRun(cliPath, "install", "--proxy", px.addr(), "--base-url", c.srv.URL, "--no-census", "--health-window", healthWindow)
	t.Logf("install said:\n%s", out)
	for _, want := range []string{"The agent was not started: /etc/teleport.yaml does not exist.", "systemctl enable --now teleport"} {
		if !strings.Contains(out, want) {
			t.Errorf("install's output lacks %q", want)
		}
	}
	if p := h.show(agentUnit, "ActiveState", "UnitFileState", "NRestarts"); p["ActiveState"] != "inactive" || p["UnitFileState"] != "disabled" || p["NRestarts"] != "0" {
		t.Errorf("%s after install on an unconfigured host: %v, want inactive, disabled, never restarted", agentUnit, p)
	}
	if p := h.show(updaterTimer, "ActiveState", "UnitFileState"); p["ActiveState"] != "active" || p["UnitFileState"] != "enabled" {
		t.Errorf("%s after install: %v, want active and enabled", updaterTimer, p)
	}
	h.mustRun("systemctl", "stop", updaterTimer) // no timer runs in the middle of the steps below
	if p := h.show(v1Timer, "ActiveState", "UnitFileState"); p["ActiveState"] != "inactive" || p["UnitFileState"] != "disabled" {
		t.Errorf("%s after install: %v, want inactive and disabled", v1Timer, p)
	}
	nr := h.mustRun("cat", "/etc/needrestart/conf.d/teleport-update.conf")
	if !strings.Contains(nr, `$nrconf{override_rc}{qr(^teleport\.service$)} = 0;`) {
		t.Errorf("needrestart drop-in:\n%s", nr)
	}
	if st := h.status(); st.Active != v1 || len(st.Skip) != 0 {
		t.Errorf("status after install: active %q skip %q, want %q and none", st.Active, st.Skip, v1)
	}

	// The timer's update moves the files and still does not start it.
	px.setTarget(v2)
	h.mustRun(cliPath, "update", "--now", "--health-window", healthWindow)
	if p := h.show(agentUnit, "ActiveState", "UnitFileState"); p["ActiveState"] != "inactive" || p["UnitFileState"] != "disabled" {
		t.Errorf("%s after an update on an unconfigured host: %v", agentUnit, p)
	}
	if st := h.status(); st.Active != v2 || len(st.Skip) != 0 {
		t.Errorf("status after update: active %q skip %q, want %q and none", st.Active, st.Skip, v2)
	}

	// What install told the admin to do.
	h.mustRun("sh", "-c", "umask 077 && printf 'version: v3\\n' >"+teleportYAMLPath)
	h.mustRun("systemctl", "enable", "--now", agentUnit)
	waitFor(t, commandTimeout, agentUnit+" to run", func() bool {
		return h.show(agentUnit, "SubState")["SubState"] == "running"
	})
	if got := h.runningVersion(); got != v2 {
		t.Errorf("agent runs %s after systemctl enable --now, want %s", got, v2)
	}
	if got := h.versions(); !slices.Contains(got, v2) {
		t.Errorf("versions %q lack %s", got, v2)
	}
}
