package install

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gravitational/teleport-update/internal/safeperm"
	"github.com/gravitational/teleport-update/internal/tmpfs"
)

// TestCopyVersionFrom: a version of the old tree is copied exactly (files,
// modes, marker), by hard links on one filesystem, and by copies across
// two, where the old tree is a mount of its own.
func TestCopyVersionFrom(t *testing.T) {
	for _, crossDevice := range []bool{false, true} {
		name := map[bool]string{false: "same filesystem", true: "across filesystems"}[crossDevice]
		t.Run(name, func(t *testing.T) {
			tr := New(t.TempDir())
			old := tr.Legacy()
			if crossDevice {
				// The old tree is a tmpfs of its own, bind mounted where
				// Teleport's data directory is.
				dir := tmpfs.Mount(t, 1<<20)
				if err := os.MkdirAll(old.DataDir(), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mount(dir, old.DataDir(), "", syscall.MS_BIND, ""); err != nil {
					t.Skipf("bind mount: %v", err)
				}
				t.Cleanup(func() { syscall.Unmount(old.DataDir(), syscall.MNT_DETACH) })
			}
			install(t, old, "1.0.0", "bin/tsh")
			if found, err := tr.HasLegacy(); err != nil || !found {
				t.Fatalf("HasLegacy() = %v, %v", found, err)
			}
			if err := tr.CopyVersionFrom(old, "1.0.0"); err != nil {
				t.Fatalf("CopyVersionFrom: %v", err)
			}
			want, got := snapshot(t, old.VersionDir("1.0.0")), snapshot(t, tr.VersionDir("1.0.0"))
			if len(want) != len(got) {
				t.Fatalf("copy has %d entries, want %d:\n%v\n%v", len(got), len(want), got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
			}
			a, _ := os.Stat(filepath.Join(old.VersionDir("1.0.0"), "bin/teleport"))
			b, _ := os.Stat(filepath.Join(tr.VersionDir("1.0.0"), "bin/teleport"))
			if os.SameFile(a, b) == crossDevice {
				t.Errorf("hard linked: %v, want %v", os.SameFile(a, b), !crossDevice)
			}
			if err := tr.Intact("1.0.0"); err != nil {
				t.Errorf("copy not intact: %v", err)
			}
			// Idempotent: a second copy changes nothing.
			if err := tr.CopyVersionFrom(old, "1.0.0"); err != nil {
				t.Errorf("second CopyVersionFrom: %v", err)
			}
		})
	}
}

// TestCopyVersionFromRefusesUnsafeFile: a file of the old tree another
// user could have changed is refused by name and nothing is left.
func TestCopyVersionFromRefusesUnsafeFile(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	old := tr.Legacy()
	install(t, old, "1.0.0")
	bad := filepath.Join(old.VersionDir("1.0.0"), "bin/tctl")
	if err := os.Chmod(bad, 0o777); err != nil {
		t.Fatal(err)
	}
	err := tr.CopyVersionFrom(old, "1.0.0")
	if !errors.Is(err, safeperm.ErrUnsafe) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("CopyVersionFrom with a world-writable file = %v, want ErrUnsafe naming %s", err, bad)
	}
	if _, err := os.Stat(tr.VersionDir("1.0.0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused copy left the version: %v", err)
	}
	if entries, _ := os.ReadDir(tr.StagingDir()); len(entries) > 0 {
		t.Errorf("staging left: %d entries", len(entries))
	}
}

// TestTreeIsPublicWhateverTheUmask: under a umask of 077 every directory
// the tree creates from the root down to a version's bin/ is still 0755,
// so every user can run the linked binaries. Not parallel: the umask is
// the process's.
func TestTreeIsPublicWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	tr := New(t.TempDir())
	release, err := tr.Lock(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	install(t, tr, "1.0.0")
	for _, rel := range []string{"var", "var/lib", dataDirRel, versionsRel, versionsRel + "/1.0.0", versionsRel + "/1.0.0/bin"} {
		fi, err := os.Stat(filepath.Join(tr.Root, rel))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, %v; want 0755", rel, fi.Mode().Perm(), err)
		}
	}
}
