package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/releasetest"
)

// publishLayout builds, signs and serves a release in Teleport's own
// tarball layout (under teleport/, or teleport-ent/ for Enterprise) under
// the edition's name for it.
func (e *e2e) publishLayout(version, edition string, broken bool) {
	e.t.Helper()
	top := "teleport"
	if edition == "ent" {
		top = "teleport-ent"
	}
	data, err := releasetest.TeleportLayoutRelease(top, version, broken)
	if err != nil {
		e.t.Fatal(err)
	}
	e.serveRelease(version, edition, data)
}

// TestE2ETeleportLayoutLifecycle, through the real binary, a real proxy and
// a loopback HTTPS CDN: releases in Teleport's tarball layout, community
// and Enterprise, install, update, and roll back when the new one fails
// its health check. Each version directory holds the binaries in bin/, the
// docs in share/ and the example unit in lib/systemd/system/, and not the
// install script.
func TestE2ETeleportLayoutLifecycle(t *testing.T) {
	for _, edition := range []string{"community", "ent"} {
		t.Run(edition, func(t *testing.T) {
			t.Parallel()
			e := newE2E(t)
			e.publishLayout("1.0.0", edition, false)
			e.publishLayout("2.0.0", edition, false)
			e.publishLayout("3.0.0", edition, true)
			e.setBuild("1.0.0", edition, false)
			e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
			checkRunnable(t, e.root, "1.0.0")

			e.setBuild("2.0.0", edition, false)
			e.mustRun("update")
			if st := e.status(); st.Active != "2.0.0" || st.Backup != "1.0.0" || e.linked() != "2.0.0" {
				t.Fatalf("after the update: %+v (linked %s)", st, e.linked())
			}
			dir := filepath.Join(e.root, "var/lib/teleport-update/versions/2.0.0")
			for _, f := range []string{"bin/teleport", "bin/tctl", "share/VERSION", "share/README.md", "lib/systemd/system/teleport.service", ".verified"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("version directory lacks %s: %v", f, err)
				}
			}
			if _, err := os.Lstat(filepath.Join(dir, "bin/install")); err == nil {
				t.Error("the release's install script was installed")
			}

			e.setBuild("3.0.0", edition, false)
			r := e.run(nil, "update")
			st := e.status()
			if r.code != 1 || !strings.Contains(r.stderr, "rolled back") || st.Active != "2.0.0" || e.linked() != "2.0.0" || !slices.Contains(st.Skip, "3.0.0") {
				t.Fatalf("update to a broken release: exit %d, status %+v, linked %s\n%s", r.code, st, e.linked(), r.stderr)
			}
			checkRunnable(t, e.root, "2.0.0")
			checkNoLeftovers(t, e.root)
		})
	}
}
