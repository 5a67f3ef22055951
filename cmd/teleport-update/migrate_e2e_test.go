package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

// toLegacyLayout turns the install under root into an earlier build's
// (fixture.ToLegacyLayout).
func toLegacyLayout(t *testing.T, root string) {
	t.Helper()
	if err := fixture.ToLegacyLayout(root); err != nil {
		t.Fatal(err)
	}
}

// legacyE2E is a host on which an earlier build installed 1.0.0, moved to
// 2.0.0 and pinned it; the proxy's window is closed.
func legacyE2E(t *testing.T) *e2e {
	t.Helper()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.publish("2.0.0", false)
	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	e.mustRun("pin", "--version", "2.0.0")
	toLegacyLayout(t, e.root)
	e.setPolicy("1.0.0", "closed")
	return e
}

// checkMoved checks that the move is finished: nothing of ours is left in
// Teleport's data directory and the state is the pinned one.
func checkMoved(t *testing.T, e *e2e) {
	t.Helper()
	if entries, _ := os.ReadDir(filepath.Join(e.root, "var/lib/teleport")); len(entries) > 0 {
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		t.Errorf("left in Teleport's data directory: %v", names)
	}
	if st := e.status(); st.Active != "2.0.0" || !st.Pinned || e.linked() != "2.0.0" {
		t.Errorf("after the move: %+v, linked %s", st, e.linked())
	}
	checkRunnable(t, e.root, "2.0.0")
	checkNoLeftovers(t, e.root)
}

// TestE2EMigrateCrashAtEveryStep kills the real binary with SIGKILL right
// after each step of the move from an earlier build's tree that a host
// without systemd reaches: status still reads the pinned state, the linked
// teleport runs, and the next run finishes the move.
func TestE2EMigrateCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	var cases []string
	for _, s := range updater.MigrationSteps {
		if !s.NeedsSystemd() {
			cases = append(cases, string(s))
		}
	}
	cases = append(cases, string(updater.StepMigrateVersion)+"#2", string(updater.StepMigrateRemoveVersion)+"#2")
	for _, at := range cases {
		t.Run(at, func(t *testing.T) {
			e := legacyE2E(t)
			r := e.run([]string{"TELEPORT_UPDATE_CRASH_AT=" + at}, "update")
			if !r.signaled {
				t.Fatalf("run was not killed at %s: exit %d\n%s", at, r.code, r.stderr)
			}
			if st := e.status(); st.Active != "2.0.0" || !st.Pinned {
				t.Fatalf("status after the kill: %+v", st)
			}
			out, err := exec.Command(filepath.Join(e.root, "usr/local/bin/teleport"), "version").Output()
			if err != nil || !strings.Contains(string(out), "v2.0.0") {
				t.Fatalf("linked teleport after the kill: %v %s", err, out)
			}
			e.mustRun("update")
			checkMoved(t, e)
		})
	}
}

// TestE2EMigrateReinstallKeepsPin: install.sh run again on a host an
// earlier build pinned keeps the pin instead of taking the proxy's target.
func TestE2EMigrateReinstallKeepsPin(t *testing.T) {
	t.Parallel()
	e := legacyE2E(t)
	e.setPolicy("1.0.0", "immediate")
	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	checkMoved(t, e)
}

// TestE2ENonRootRunsLinkedTsh: with Teleport's data directory at mode
// 0700, as Teleport makes it, an unprivileged user runs the linked tsh
// and tctl. On the layout of earlier builds the same user could not.
func TestE2ENonRootRunsLinkedTsh(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run as another user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	e := newE2E(t)
	for _, d := range []string{filepath.Dir(e.root), e.root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := fixture.Tarball(map[string][]byte{
		"bin/teleport": []byte(releasetest.Script("1.0.0", false)),
		"bin/tctl":     []byte("#!/bin/sh\necho tctl ok\n"),
		"bin/tsh":      []byte("#!/bin/sh\necho tsh ok\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := download.NewArtifact(download.ProductTeleport, "1.0.0", runtime.GOOS, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cdn.Publish(e.key, e.dir, a.TarballName(), data); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.root, "var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(e.root, "var/lib/teleport"), 0o700); err != nil {
		t.Fatal(err)
	}
	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	asNobody := func() error {
		for _, name := range []string{"tsh", "tctl"} {
			cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", filepath.Join(e.root, "usr/local/bin", name))
			if out, err := cmd.CombinedOutput(); err != nil || string(out) != name+" ok\n" {
				return fmt.Errorf("%s: %v: %s", name, err, out)
			}
		}
		return nil
	}
	if err := asNobody(); err != nil {
		o, _ := exec.Command("namei", "-l", filepath.Join(e.root, "usr/local/bin/tsh")).CombinedOutput()
		t.Fatalf("uid 65534 cannot run the linked binaries: %v\n%s", err, o)
	}
	toLegacyLayout(t, e.root)
	if err := asNobody(); err == nil {
		t.Fatal("uid 65534 ran the linked binaries in the old layout: the test proves nothing")
	}
	e.mustRun("update")
	if err := asNobody(); err != nil {
		t.Fatalf("after the move, uid 65534 cannot run the linked binaries: %v", err)
	}
}

// TestE2EUninstallRefusesEnabledAgent: the real binary refuses to
// uninstall an enabled agent without --force, and changes nothing then.
func TestE2EUninstallRefusesEnabledAgent(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	wants := filepath.Join(e.root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd/system/teleport.service", filepath.Join(wants, "teleport.service")); err != nil {
		t.Fatal(err)
	}
	r := e.run(nil, "uninstall")
	if r.code != 1 || !strings.Contains(r.stderr, "teleport.service is enabled") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("uninstall of an enabled agent: exit %d\n%s", r.code, r.stderr)
	}
	if e.linked() != "1.0.0" || e.status().Active != "1.0.0" {
		t.Fatalf("refused uninstall changed the host: linked %q", e.linked())
	}
	e.mustRun("uninstall", "--force")
	if e.linked() != "" {
		t.Fatal("links left after uninstall --force")
	}
	if _, err := os.Stat(filepath.Join(e.root, "var/lib/teleport-update")); !os.IsNotExist(err) {
		t.Errorf("data directory left after uninstall: %v", err)
	}
}
