package install

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// packageTree is a root with a package install of Teleport in
// /opt/teleport/system/bin (teleport, tctl, a script and teleport-update).
func packageTree(t *testing.T) *Tree {
	t.Helper()
	tr := New(t.TempDir())
	dir := tr.PackageBinDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"teleport": "\x7fELF", "tctl": "\x7fELF", "install-helper": "#!/bin/sh\n", "teleport-update": "\x7fELF"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

func TestLinkPackage(t *testing.T) {
	tr := packageTree(t)
	linked, err := tr.LinkPackage()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range linked {
		names = append(names, filepath.Base(p))
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"tctl", "teleport"}) {
		t.Fatalf("linked %v, want tctl and teleport", names)
	}
	b, err := os.ReadFile(filepath.Join(tr.BinDir(), "teleport"))
	if err != nil || string(b) != "\x7fELF" {
		t.Fatalf("the link does not reach the package's teleport: %v %q", err, b)
	}
	if !tr.PackageLinked() || !tr.HasPackage() {
		t.Fatal("PackageLinked or HasPackage is false after linking")
	}
	again, err := tr.LinkPackage()
	if err != nil || len(again) != 0 {
		t.Fatalf("linking again: %v %v, want nothing to do", again, err)
	}
	removed, err := tr.UnlinkPackage()
	if err != nil || len(removed) != 2 || tr.PackageLinked() {
		t.Fatalf("unlink: %v %v", removed, err)
	}
}

// TestLinkPackageLeavesManagedLinks: with a managed version's link in
// place, nothing of the package is linked.
func TestLinkPackageLeavesManagedLinks(t *testing.T) {
	tr := packageTree(t)
	if err := os.MkdirAll(tr.BinDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	managed := "../../../var/lib/teleport-update/versions/1.0.0/bin/tctl"
	if err := os.Symlink(managed, filepath.Join(tr.BinDir(), "tctl")); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.LinkPackage(); !errors.Is(err, ErrLinked) {
		t.Fatalf("LinkPackage = %v, want ErrLinked", err)
	}
	if _, err := os.Lstat(filepath.Join(tr.BinDir(), "teleport")); !os.IsNotExist(err) {
		t.Fatal("LinkPackage linked teleport although a managed version is linked")
	}
	if removed, err := tr.UnlinkPackage(); err != nil || len(removed) != 0 {
		t.Fatalf("UnlinkPackage removed %v (%v); a managed link is not the package's", removed, err)
	}
	if got, _ := os.Readlink(filepath.Join(tr.BinDir(), "tctl")); got != managed {
		t.Fatalf("the managed link changed: %s", got)
	}
}

// TestLinkPackageRefusesFiles: a regular file in the way is not replaced.
func TestLinkPackageRefusesFiles(t *testing.T) {
	tr := packageTree(t)
	if err := os.MkdirAll(tr.BinDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tr.BinDir(), "teleport"), []byte("mine"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.LinkPackage(); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("LinkPackage = %v, want ErrNotOurs", err)
	}
	if _, err := os.Lstat(filepath.Join(tr.BinDir(), "tctl")); !os.IsNotExist(err) {
		t.Fatal("LinkPackage linked tctl before refusing")
	}
}

// TestUnlinkPackageAbsolute: Teleport's own absolute links are the
// package's too.
func TestUnlinkPackageAbsolute(t *testing.T) {
	tr := packageTree(t)
	os.MkdirAll(tr.BinDir(), 0o755)
	if err := os.Symlink("/"+PackageBinRel+"/tsh", filepath.Join(tr.BinDir(), "tsh")); err != nil {
		t.Fatal(err)
	}
	if removed, err := tr.UnlinkPackage(); err != nil || len(removed) != 1 {
		t.Fatalf("UnlinkPackage: %v %v", removed, err)
	}
}
