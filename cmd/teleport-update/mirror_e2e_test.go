package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

// TestE2EMirror is the operator flow for genuine releases: an origin that
// publishes tarballs in Teleport's layout and plain .sha256 files (as
// Teleport's CDN does) is
// mirrored and signed with the organisation's key, the mirror is served,
// and a host pinning that key installs and updates from it. A tampered
// origin file is refused and never signed.
func TestE2EMirror(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	origin := fixture.NewCDN()
	t.Cleanup(origin.Close)
	caFile := filepath.Join(e.dir, "ca-with-origin.pem")
	ca, _ := os.ReadFile(e.caFile)
	os.WriteFile(caFile, append(ca, origin.CertPEM()...), 0o644)
	mirrorDir := filepath.Join(e.dir, "mirror")
	orgKey := filepath.Join(e.dir, "keys", "release.key")

	publishOrigin := func(version string) string {
		data, err := releasetest.TeleportLayoutRelease("teleport", version, false)
		if err != nil {
			t.Fatal(err)
		}
		a, err := download.NewArtifact(download.ProductTeleport, version, runtime.GOOS, runtime.GOARCH)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		origin.Put(a.TarballName(), data)
		origin.Put(a.ChecksumName(), []byte(hex.EncodeToString(sum[:])+"  "+a.TarballName()+"\n"))
		return a.TarballName()
	}
	mirror := func(version string) runResult {
		return e.run([]string{"SSL_CERT_FILE=" + caFile}, "release", "mirror", "--from", origin.Server.URL,
			"--version", version, "--os", runtime.GOOS, "--arch", runtime.GOARCH, "--key", orgKey, "--out", mirrorDir)
	}
	serveMirror := func() {
		entries, err := os.ReadDir(mirrorDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range entries {
			b, err := os.ReadFile(filepath.Join(mirrorDir, ent.Name()))
			if err != nil {
				t.Fatal(err)
			}
			e.cdn.Put(ent.Name(), b)
		}
	}

	publishOrigin("1.0.0")
	if r := mirror("1.0.0"); r.code != 0 || !strings.Contains(r.stdout, ": mirrored") {
		t.Fatalf("mirror 1.0.0: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	serveMirror()
	e.mustRun("install", "--proxy", e.proxy, "--group", "staging", "--token", e.token, "--base-url", e.cdn.Server.URL)
	if got := e.linked(); got != "1.0.0" {
		t.Fatalf("after install from the mirror: linked %q, want 1.0.0", got)
	}
	for _, name := range []string{"usr/local/bin/install", "var/lib/teleport-update/versions/1.0.0/bin/install"} {
		if _, err := os.Lstat(filepath.Join(e.root, name)); err == nil {
			t.Errorf("%s exists: Teleport's install script must be skipped", name)
		}
	}
	if _, err := os.Stat(filepath.Join(e.root, "usr/local/bin/tctl")); err != nil {
		t.Errorf("tctl is not linked: %v", err)
	}

	publishOrigin("2.0.0")
	if r := mirror("2.0.0"); r.code != 0 {
		t.Fatalf("mirror 2.0.0: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := mirror("2.0.0"); r.code != 0 || !strings.Contains(r.stdout, "already mirrored") {
		t.Fatalf("re-running mirror: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	serveMirror()
	e.setPolicy("2.0.0", "immediate")
	e.mustRun("update")
	if got := e.linked(); got != "2.0.0" {
		t.Fatalf("after update from the mirror: linked %q, want 2.0.0", got)
	}

	name := publishOrigin("3.0.0")
	data := origin.Get(name)
	data[len(data)-10] ^= 0xff
	origin.Put(name, data)
	r := mirror("3.0.0")
	if r.code == 0 || !strings.Contains(r.stderr, "does not match its published SHA-256") {
		t.Fatalf("tampered origin: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if matches, _ := filepath.Glob(filepath.Join(mirrorDir, "*3.0.0*")); len(matches) != 0 {
		t.Fatalf("a tampered release left files in the mirror: %v", matches)
	}
}
