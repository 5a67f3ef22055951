package systemd

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/keys"
	"github.com/gravitational/teleport-update/internal/packaging"
)

// Paths of the package install inside the container.
const (
	debPath        = "/root/teleport-update.deb"
	packageVersion = "1.0.0"
)

var debFile once

// debPackage builds the .deb of teleport-update packageVersion for this
// machine's architecture, as make package does.
func debPackage(t *testing.T) string {
	return debFile.get(t, func() (string, error) {
		bin := filepath.Join(buildDir, "package", "teleport-update")
		if err := goTool("build", "-trimpath", "-ldflags", "-s -w -X main.version="+packageVersion, "-o", bin, "./cmd/teleport-update"); err != nil {
			return "", err
		}
		return packaging.Build(packaging.Spec{
			Version: packageVersion, Arch: runtime.GOARCH, Binary: bin,
			ManPage: []byte(".TH TELEPORT-UPDATE 8\n"), Keys: keys.FS, Date: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC),
		}, "deb", filepath.Dir(bin))
	})
}

// TestDebPackageInstall installs the built .deb with dpkg -i on a fresh
// host: nothing starts or gets enabled; the admin's enable --proxy is a
// first install from the test proxy and CDN; an update and then a release
// carrying a newer updater follow. dpkg -V reports no file of the package
// modified at any point, because the updater writes its own copy and its
// own units outside the package's paths.
func TestDebPackageInstall(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	deb := debPackage(t)
	c := sharedCDN(t)
	px := newProxy(t, v1)
	h := bootHost(t, func(root string) error {
		data, err := os.ReadFile(deb)
		if err != nil {
			return err
		}
		if err := writeFile(root, debPath, data, 0o644); err != nil {
			return err
		}
		if err := appendFile(root, caBundlePath, c.caPEM); err != nil {
			return err
		}
		if err := writeFile(root, testKeyPath, c.pubPEM, 0o644); err != nil {
			return err
		}
		return writeFile(root, teleportYAMLPath, teleportYAML, 0o600)
	})

	h.mustRun("dpkg", "-i", debPath)
	for _, u := range []string{updaterTimer, updaterUnit, agentUnit} {
		if p := h.show(u, "ActiveState", "UnitFileState"); p["ActiveState"] == "active" || p["UnitFileState"] == "enabled" {
			t.Errorf("%s after dpkg -i: %v, want neither active nor enabled", u, p)
		}
	}
	if out := h.mustRun(packaging.BinPath, "version"); !strings.Contains(out, "v"+packageVersion) {
		t.Errorf("%s version: %q, want %s", packaging.BinPath, out, packageVersion)
	}
	if out := h.mustRun("stat", "-c", "%a %U", packaging.KeysDir); strings.TrimSpace(out) != "755 root" {
		t.Errorf("%s: %q, want 755 root", packaging.KeysDir, out)
	}

	h.mustRun(packaging.BinPath, "enable", "--proxy", px.addr(), "--base-url", c.srv.URL, "--no-census", "--health-window", healthWindow)
	if got := h.runningVersion(); got != v1 {
		t.Errorf("agent runs %s after enable, want %s", got, v1)
	}
	if p := h.show(updaterTimer, "ActiveState", "UnitFileState", "FragmentPath"); p["ActiveState"] != "active" || p["UnitFileState"] != "enabled" || p["FragmentPath"] != "/etc/systemd/system/"+updaterTimer {
		t.Errorf("%s after enable: %v, want active, enabled, from /etc/systemd/system", updaterTimer, p)
	}
	if out := h.mustRun(cliPath, "version"); !strings.Contains(out, "v"+packageVersion) {
		t.Errorf("%s version: %q, want the package's %s", cliPath, out, packageVersion)
	}
	h.mustRun("systemctl", "stop", updaterTimer) // the runs below are the test's own

	px.setTarget(v2)
	h.mustRun(cliPath, "update", "--now", "--health-window", healthWindow)
	if got := h.runningVersion(); got != v2 {
		t.Errorf("agent runs %s after update, want %s", got, v2)
	}
	checkDpkgVerify(h, "enable and update")

	// A release carrying a newer updater: the timer's run updates the
	// updater the timer runs, and leaves the package's binary alone.
	publishSelfUpdates(t)
	px.setTarget(vSelf)
	fireTimer(h)
	if out := h.mustRun(cliPath, "version"); !strings.HasPrefix(out, "teleport-update v"+selfUpdaterVersion+" ") {
		t.Errorf("%s after the self-update says %q, want %s", cliPath, out, selfUpdaterVersion)
	}
	if out := h.mustRun(packaging.BinPath, "version"); !strings.HasPrefix(out, "teleport-update v"+packageVersion+" ") {
		t.Errorf("the package's %s says %q after the self-update, want %s", packaging.BinPath, out, packageVersion)
	}
	checkDpkgVerify(h, "the self-update")
}

// checkDpkgVerify fails the test when dpkg -V reports a file of the
// package changed (size, mode, digest, owner …) or missing.
func checkDpkgVerify(h *host, after string) {
	h.t.Helper()
	if out, stderr, err := h.run("dpkg", "-V", packaging.Name); err != nil || out != "" || stderr != "" {
		h.t.Errorf("dpkg -V %s after %s: %v\n%s%s", packaging.Name, after, err, out, stderr)
	}
}
