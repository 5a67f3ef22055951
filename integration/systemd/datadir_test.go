package systemd

import (
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater"
)

// toLegacyScript turns the install into what an earlier build left: the
// tree in Teleport's data directory (0700, with Teleport's own data in
// it), links, units and the timer's sandbox naming it, and the agent
// restarted so that it runs from there.
const toLegacyScript = `set -eu
mkdir -p /var/lib/teleport
chmod 0700 /var/lib/teleport
echo teleport-own-data > /var/lib/teleport/host_uuid
for f in /var/lib/teleport-update/* /var/lib/teleport-update/.[!.]*; do
	[ -e "$f" ] && mv "$f" /var/lib/teleport/
done
rmdir /var/lib/teleport-update
for l in /usr/local/bin/*; do
	if [ -L "$l" ]; then
		ln -sfn "$(readlink "$l" | sed 's#/teleport-update/versions/#/teleport/versions/#')" "$l"
	fi
done
sed -i -e 's#/var/lib/teleport-update#/var/lib/teleport#g' -e 's# -/var/lib/teleport # #' \
	-e '/^StateDirectory/d' /etc/systemd/system/teleport.service /etc/systemd/system/teleport-update.service
systemctl daemon-reload
systemctl restart teleport.service
`

// TestMigrateOldLayoutKeepsAgent: on a host an earlier build installed,
// with the agent running from /var/lib/teleport, the new binary run by
// the earlier build's sandboxed timer unit widens that unit's sandbox
// (its first run cannot write /var/lib/teleport-update), and the next run
// moves the tree over. The agent is never restarted: same main PID, no
// restarts.
func TestMigrateOldLayoutKeepsAgent(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	h, px := installedHost(t, teleportUpdateBinary(t), "2s")
	h.mustRun("sh", "-c", toLegacyScript)
	before := h.show(agentUnit, "MainPID", "NRestarts", "ActiveState")
	exe := strings.TrimSpace(h.mustRun("readlink", "/proc/"+before["MainPID"]+"/exe"))
	if before["ActiveState"] != "active" || exe != "/var/lib/teleport/versions/"+v1+"/bin/teleport" {
		t.Fatalf("old layout: agent %v runs %s", before, exe)
	}

	// The earlier build's unit: its sandbox cannot write the new directory.
	if _, e, err := h.run("systemctl", "start", updaterUnit); err == nil {
		t.Fatalf("the first run under the old sandbox succeeded; it cannot have moved the tree\n%s", e)
	}
	unit := h.mustRun("cat", "/etc/systemd/system/"+updaterUnit)
	if !strings.Contains(unit, "ReadWritePaths=/var/lib/teleport-update -/var/lib/teleport ") || !strings.Contains(unit, "StateDirectory=teleport-update") {
		t.Fatalf("the first run did not widen the timer's sandbox:\n%s", unit)
	}
	h.mustRun("systemctl", "start", updaterUnit)

	after := h.show(agentUnit, "MainPID", "NRestarts", "ActiveState")
	if after["MainPID"] != before["MainPID"] || after["NRestarts"] != "0" || after["ActiveState"] != "active" {
		t.Fatalf("the agent was restarted by the move: before %v, after %v", before, after)
	}
	if left := strings.Fields(h.mustRun("ls", "-A", "/var/lib/teleport")); len(left) != 1 || left[0] != "host_uuid" {
		t.Errorf("left in Teleport's data directory: %v", left)
	}
	if got := strings.TrimSpace(h.mustRun("readlink", "-f", agentLinkPath)); got != versionsDir+"/"+v1+"/bin/teleport" {
		t.Errorf("%s resolves to %s", agentLinkPath, got)
	}
	for _, unit := range []string{agentUnit, updaterUnit} {
		if text := h.mustRun("systemctl", "cat", unit); strings.Contains(text, "/var/lib/teleport/") {
			t.Errorf("%s still names the old tree:\n%s", unit, text)
		}
	}
	if st := h.status(); st.Active != v1 {
		t.Errorf("status after the move: %+v", st)
	}
	// A user other than root runs the linked binaries.
	h.mustRun("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", agentLinkPath, "version")
	// The moved host updates as any other.
	px.setTarget(v2)
	h.mustRun(cliPath, "update", "--now", "--health-window", "2s")
	if got := h.runningVersion(); got != v2 {
		t.Errorf("after an update the agent runs %s, want %s", got, v2)
	}
	if st := h.status(); st.Active != v2 || st.Backup != v1 {
		t.Errorf("status after the update: %+v", st)
	}
	checkConsistent(h, v2)
}

// TestUninstallRefusesThenHandsBackToPackage: uninstall refuses while the
// agent is active and enabled; with --force, on a host with a package
// install of Teleport, the packaged unit takes over, enabled and running.
func TestUninstallRefusesThenHandsBackToPackage(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	h, _ := installedHost(t, teleportUpdateBinary(t), "2s")
	pid := h.show(agentUnit, "MainPID")["MainPID"]

	_, e, err := h.run(cliPath, "uninstall")
	if err == nil || !strings.Contains(e, "is active and enabled") {
		t.Fatalf("uninstall of a running agent: err %v\n%s", err, e)
	}
	if got := h.show(agentUnit, "MainPID")["MainPID"]; got != pid {
		t.Fatalf("refused uninstall touched the agent: MainPID %s -> %s", pid, got)
	}

	// A package install: its binary and its unit.
	h.mustRun("cp", versionsDir+"/"+v1+"/bin/teleport", "/usr/bin/teleport")
	h.mustRun("sh", "-c", `printf '[Service]\nExecStart=/usr/bin/teleport start --config /etc/teleport.yaml\n\n[Install]\nWantedBy=multi-user.target\n' > /lib/systemd/system/teleport.service`)
	h.mustRun(cliPath, "uninstall", "--force")

	p := h.show(agentUnit, "ActiveState", "UnitFileState", "FragmentPath", "MainPID")
	if p["ActiveState"] != "active" || p["UnitFileState"] != "enabled" || !strings.HasSuffix(p["FragmentPath"], "lib/systemd/system/teleport.service") {
		t.Fatalf("after uninstall --force the packaged unit is %v, want active, enabled", p)
	}
	if exe := strings.TrimSpace(h.mustRun("readlink", "/proc/"+p["MainPID"]+"/exe")); exe != "/usr/bin/teleport" {
		t.Errorf("the agent runs %s, want the packaged /usr/bin/teleport", exe)
	}
	if out, _, _ := h.run("ls", "-A", "/var/lib/teleport-update", "/etc/systemd/system/teleport.service", agentLinkPath); strings.TrimSpace(out) != "" {
		t.Errorf("left after uninstall: %s", out)
	}
}

// TestMigrateCrashAtEveryStep kills the move from an earlier build's tree
// at each of its steps on a real systemd: the agent keeps running from
// start to end (same main PID, no restarts), status reads the state, and
// the next run finishes the move.
func TestMigrateCrashAtEveryStep(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	for _, step := range updater.MigrationSteps {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			c := sharedCDN(t)
			px := newProxy(t, v1)
			h := bootHost(t, prepareForCLI(crashtestBinary(t), c))
			h.mustRun(cliPath, "install", "--proxy", px.addr(), "--base-url", c.srv.URL, "--no-census", "--health-window", crashHealthWindow)
			h.mustRun("systemctl", "stop", updaterTimer)
			h.mustRun("sh", "-c", toLegacyScript)
			before := h.show(agentUnit, "MainPID")["MainPID"]

			o, e, err := h.run("env", crashEnv+"="+string(step), cliPath, "update")
			if !killed(err) {
				t.Fatalf("update with %s=%s was not killed (%v)\nstdout:\n%s\nstderr:\n%s", crashEnv, step, err, o, e)
			}
			if st := h.status(); st.Active != v1 {
				t.Fatalf("status after the kill at %s: %+v", step, st)
			}
			if got := h.mustRun(agentLinkPath, "version"); !strings.Contains(got, "v"+v1) {
				t.Fatalf("the linked teleport prints %q after the kill at %s", got, step)
			}
			h.mustRun(cliPath, "update")
			p := h.show(agentUnit, "MainPID", "NRestarts", "ActiveState")
			if p["MainPID"] != before || p["NRestarts"] != "0" || p["ActiveState"] != "active" {
				t.Fatalf("the agent was restarted: MainPID %s, now %v", before, p)
			}
			if left := strings.Fields(h.mustRun("ls", "-A", "/var/lib/teleport")); len(left) != 1 || left[0] != "host_uuid" {
				t.Errorf("left in Teleport's data directory: %v", left)
			}
			checkConsistent(h, v1)
		})
	}
}

// TestAdminUnitKeptAndRestored: an admin's own teleport.service stops
// install unless --overwrite; when overwritten, uninstall puts it back
// byte for byte and systemd loads it again.
func TestAdminUnitKeptAndRestored(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	c := sharedCDN(t)
	px := newProxy(t, v1)
	const admin = "[Unit]\nDescription=Teleport, hardened by the admin\n\n[Service]\nUser=root\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nProtectSystem=strict\nExecStart=/usr/local/bin/teleport start --config /etc/teleport.yaml\n\n[Install]\nWantedBy=multi-user.target\n"
	h := bootHost(t, func(root string) error {
		if err := prepareForCLI(teleportUpdateBinary(t), c)(root); err != nil {
			return err
		}
		return writeFile(root, "/etc/systemd/system/"+agentUnit, []byte(admin), 0o644)
	})
	// The admin's unit is enabled, as a host set up by hand has it: the
	// agent then runs once installed (an unused unit would keep it off).
	h.mustRun("systemctl", "enable", agentUnit)
	args := []string{cliPath, "install", "--proxy", px.addr(), "--base-url", c.srv.URL, "--no-census", "--health-window", "2s"}
	_, e, err := h.run(args...)
	if err == nil || !strings.Contains(e, "/etc/systemd/system/"+agentUnit) || !strings.Contains(e, "overwrite") {
		t.Fatalf("install over the admin's unit: err %v\n%s", err, e)
	}
	if got := h.mustRun("cat", "/etc/systemd/system/"+agentUnit); got != admin {
		t.Fatalf("refused install changed the admin's unit:\n%s", got)
	}
	if st := h.status(); len(st.Skip) > 0 {
		t.Errorf("a version was skip-listed because of the admin's unit: %q", st.Skip)
	}
	h.mustRun(append(args, "--overwrite")...)
	if got := h.mustRun("cat", "/etc/systemd/system/"+agentUnit); !strings.HasPrefix(got, "# Managed by teleport-update.") {
		t.Fatalf("install --overwrite did not write our unit:\n%s", got)
	}
	h.mustRun(cliPath, "uninstall", "--force")
	if got := h.mustRun("cat", "/etc/systemd/system/"+agentUnit); got != admin {
		t.Fatalf("uninstall did not restore the admin's unit:\n%s", got)
	}
	if d := h.show(agentUnit, "Description")["Description"]; d != "Teleport, hardened by the admin" {
		t.Errorf("systemd did not load the restored unit: Description=%q", d)
	}
}
