package updater

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// unconfiguredHost is a systemd host (fake) whose agent has no
// /etc/teleport.yaml, and the reasons the updater gave for holding the
// agent.
func unconfiguredHost(t *testing.T) (*testEnv, *Updater, *fakeSystemd, *[]string) {
	t.Helper()
	e := newTestEnv(t)
	u := e.updater()
	sd := withSystemd(e, u)
	if err := os.Remove(filepath.Join(e.root, "etc/teleport.yaml")); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	u.AgentHeld = func(r string) { reasons = append(reasons, r) }
	return e, u, sd, &reasons
}

// A first install on a host with no agent configuration installs, links
// and writes the units but neither starts nor enables the agent, and
// skip-lists nothing; updates keep it so until the admin configures and
// enables it, after which updates restart it as always.
func TestUnconfiguredHostAgentStaysStopped(t *testing.T) {
	e, u, sd, reasons := unconfiguredHost(t)
	e.publish("1.0.0", false)
	e.publish("2.0.0", false)
	e.publish("3.0.0", false)
	e.publish("4.0.0", true)
	e.install(u, "1.0.0")
	if sd.running != "" || sd.restarts != 0 || slices.Contains(sd.enabled, AgentUnit) {
		t.Fatalf("agent started or enabled without a configuration: running %q restarts %d enabled %v", sd.running, sd.restarts, sd.enabled)
	}
	if !slices.Contains(sd.enabled, UpdaterTimerUnit) {
		t.Fatalf("timer not enabled: %v", sd.enabled)
	}
	if sd.loaded != "1.0.0" {
		t.Fatalf("systemd loaded %q, want the unit of 1.0.0", sd.loaded)
	}
	if cfg := e.config(); cfg.Status.Active != "1.0.0" || len(cfg.Status.Skip) != 0 {
		t.Fatalf("after install: %+v", cfg.Status)
	}
	if !slices.Equal(*reasons, []string{HeldNoConfig}) {
		t.Fatalf("held reasons %q, want %q", *reasons, HeldNoConfig)
	}

	// The timer's update moves the files, still without starting it.
	e.setTarget("2.0.0", true, 0)
	if _, err := u.Update(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if sd.running != "" || e.config().Status.Active != "2.0.0" {
		t.Fatalf("update on an unconfigured host: running %q, status %+v", sd.running, e.config().Status)
	}

	// Configured but not enabled by the admin: still held.
	os.WriteFile(filepath.Join(e.root, "etc/teleport.yaml"), []byte("version: v3\n"), 0o600)
	e.setTarget("3.0.0", true, 0)
	if _, err := u.Update(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if sd.running != "" || (*reasons)[len(*reasons)-1] != HeldNotEnabled {
		t.Fatalf("update of a configured but not enabled agent: running %q, reasons %q", sd.running, *reasons)
	}

	// systemctl enable --now teleport: from now on today's behaviour,
	// rollback and skip list included.
	sd.Enable(context.Background(), AgentUnit)
	sd.DaemonReload(context.Background())
	sd.Restart(context.Background(), AgentUnit)
	e.setTarget("4.0.0", true, 0)
	if _, err := u.Update(context.Background(), false); !errors.Is(err, ErrRolledBack) {
		t.Fatalf("broken update of an enabled agent: %v, want rolled back", err)
	}
	if sd.running != "3.0.0" || !e.config().Status.IsSkipped("4.0.0") {
		t.Fatalf("after rollback: running %q status %+v", sd.running, e.config().Status)
	}
}

// An agent unit that is there but neither running nor enabled (say, a
// packaged agent the admin turned off) is left off by a first install.
func TestFirstInstallLeavesDisabledAgentOff(t *testing.T) {
	e, u, sd, reasons := unconfiguredHost(t)
	os.WriteFile(filepath.Join(e.root, "etc/teleport.yaml"), []byte("version: v3\n"), 0o600)
	sd.agentLoad = "loaded"
	e.publish("1.0.0", false)
	e.install(u, "1.0.0")
	if sd.running != "" || slices.Contains(sd.enabled, AgentUnit) || !slices.Equal(*reasons, []string{HeldNotEnabled}) {
		t.Fatalf("running %q enabled %v reasons %q", sd.running, sd.enabled, *reasons)
	}
}

// A broken binary is still caught when the agent is held: the install
// fails, and the version is skip-listed (the exec check needs no
// configuration).
func TestHeldInstallStillChecksTheBinary(t *testing.T) {
	e, u, sd, _ := unconfiguredHost(t)
	e.publish("1.0.0", true)
	e.setTarget("1.0.0", true, 0)
	_, err := u.Install(context.Background(), InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL, Version: "1.0.0"})
	if !errors.Is(err, ErrHealth) || !errors.Is(err, install.ErrUnhealthy) {
		t.Fatalf("held install of a broken build: %v", err)
	}
	if sd.running != "" || !e.config().Status.IsSkipped("1.0.0") {
		t.Fatalf("running %q status %+v", sd.running, e.config().Status)
	}
}

// An agent that already runs without /etc/teleport.yaml (configured some
// other way) is restarted as before; when it fails its health check the
// missing configuration is the likely cause, so the version is not
// skip-listed.
func TestRunningAgentWithoutConfigIsNotSkipListed(t *testing.T) {
	e, u, sd, _ := unconfiguredHost(t)
	sd.loaded, sd.running = "packaged", "packaged"
	e.publish("1.0.0", true)
	e.setTarget("1.0.0", true, 0)
	_, err := u.Install(context.Background(), InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL, Version: "1.0.0"})
	if !errors.Is(err, ErrSwitch) {
		t.Fatalf("failed install next to a running agent without config: %v, want ErrSwitch", err)
	}
	if sd.running != "packaged" || e.config().Status.IsSkipped("1.0.0") {
		t.Fatalf("running %q status %+v", sd.running, e.config().Status)
	}
}

// Install stops and disables Teleport's older updater when its timer is
// installed, and writes the needrestart drop-in; uninstall removes the
// drop-in.
func TestInstallSetsUpHost(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	sd := withSystemd(e, u)
	timer := filepath.Join(e.root, "lib/systemd/system", V1UpdaterTimer)
	os.MkdirAll(filepath.Dir(timer), 0o755)
	os.WriteFile(timer, []byte("[Timer]\n"), 0o644)
	sd.others = map[string]install.UnitState{V1UpdaterTimer: {ActiveState: "active", LoadState: "loaded", UnitFileState: "enabled"}}
	e.publish("1.0.0", false)
	e.install(u, "1.0.0")
	for _, want := range []string{"stop " + V1UpdaterTimer, "disable " + V1UpdaterTimer} {
		if !slices.Contains(sd.calls, want) {
			t.Errorf("calls %q lack %q", sd.calls, want)
		}
	}
	// Turned back on by someone, it is turned off again by enable.
	sd.calls = nil
	sd.others[V1UpdaterTimer] = install.UnitState{ActiveState: "active", LoadState: "loaded", UnitFileState: "enabled"}
	if _, err := u.SetEnabled(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sd.calls, "stop "+V1UpdaterTimer) || !slices.Contains(sd.calls, "disable "+V1UpdaterTimer) {
		t.Errorf("enable left %s on: calls %q", V1UpdaterTimer, sd.calls)
	}
	nr := filepath.Join(e.root, "etc/needrestart/conf.d/teleport-update.conf")
	got, err := os.ReadFile(nr)
	if err != nil || string(got) != "# Managed by teleport-update: the agent is restarted by teleport-update only.\n$nrconf{override_rc}{qr(^teleport\\.service$)} = 0;\n" {
		t.Fatalf("needrestart drop-in: %q, %v", got, err)
	}
	removed, err := u.Uninstall(context.Background(), true)
	if err != nil || !slices.Contains(removed, nr) {
		t.Fatalf("uninstall removed %q, %v", removed, err)
	}
	if _, err := os.Stat(nr); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("needrestart drop-in left after uninstall: %v", err)
	}
}

// Without the older updater's unit file, its timer is not touched.
func TestInstallLeavesAbsentV1UpdaterAlone(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	sd := withSystemd(e, u)
	e.publish("1.0.0", false)
	e.install(u, "1.0.0")
	if slices.ContainsFunc(sd.calls, func(c string) bool { return c == "stop "+V1UpdaterTimer || c == "disable "+V1UpdaterTimer }) {
		t.Fatalf("calls %q touch %s", sd.calls, V1UpdaterTimer)
	}
}

// The repair after a run killed while switching a held agent does not
// start it either.
func TestRepairKeepsHeldAgentStopped(t *testing.T) {
	e, u, sd, _ := unconfiguredHost(t)
	e.publish("1.0.0", false)
	e.install(u, "1.0.0")
	cfg := e.config()
	cfg.Status.Switching = "2.0.0" // as a run killed on its way to 2.0.0 leaves it
	if err := SaveConfig(u.Tree.StatePath(), cfg); err != nil {
		t.Fatal(err)
	}
	e.setTarget("1.0.0", false, 0)
	if _, err := u.Update(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if sd.running != "" || sd.restarts != 0 {
		t.Fatalf("repair started the held agent: running %q restarts %d calls %q", sd.running, sd.restarts, sd.calls)
	}
	if e.config().Status.Switching != "" {
		t.Fatal("repair left the switch marker")
	}
}
