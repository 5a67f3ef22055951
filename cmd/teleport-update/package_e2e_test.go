package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater"
)

// TestE2ELinkPackage: a Teleport package's postinst (link-package) links
// its binaries on a host the updater does not manage, a first install
// takes their place, a second link-package then links nothing and exits
// 0, and status says the host has both.
func TestE2ELinkPackage(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	pkg := filepath.Join(e.root, "opt/teleport/system/bin")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"teleport": releasetest.Script("0.9.0", false), "tctl": "\x7fELF"} {
		if err := os.WriteFile(filepath.Join(pkg, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if r := e.mustRun("link-package"); !strings.Contains(r.stdout, "Linked 2 binaries") {
		t.Fatalf("link-package on a package-only host: %s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(e.root, "var/lib/teleport-update")); !os.IsNotExist(err) {
		t.Errorf("link-package on a package-only host made the updater's directory: %v", err)
	}
	e.publish("1.0.0", false)
	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	if e.linked() != "1.0.0" {
		t.Fatalf("after install the links point at %q, want the managed 1.0.0", e.linked())
	}
	r := e.mustRun("link-package")
	if !strings.Contains(r.stdout, "not linked") || e.linked() != "1.0.0" {
		t.Fatalf("link-package on a managed host: %s, linked %q", r.stdout, e.linked())
	}
	if st := e.status(); st.Install != updater.InstallBoth {
		t.Fatalf("status says install %q, want %q", st.Install, updater.InstallBoth)
	}
	if r := e.mustRun("unlink-package"); strings.Contains(r.stdout, "Removed") || e.linked() != "1.0.0" {
		t.Fatalf("unlink-package removed managed links: %s", r.stdout)
	}
	// Uninstall hands the host back to the package: its links come back.
	e.mustRun("uninstall", "--force")
	if got, err := os.Readlink(filepath.Join(e.root, "usr/local/bin/teleport")); err != nil || !strings.Contains(got, "opt/teleport/system/bin/teleport") {
		t.Fatalf("after uninstall /usr/local/bin/teleport is %q (%v), want the package's", got, err)
	}
}
