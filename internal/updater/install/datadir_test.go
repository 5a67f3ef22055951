package install

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/safeperm"
)

// nobody is the unprivileged uid and gid the attacks run as.
const nobody = 65534

// attackRoot returns a tree whose root an unprivileged user can traverse,
// for tests that run an attack as that user. It skips unless root.
func attackRoot(t *testing.T) *Tree {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run an attack as another user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tr := New(root)
	if err := os.MkdirAll(tr.VersionsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	return tr
}

// asNobody runs script with sh as uid/gid 65534 and no groups.
func asNobody(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-ec", script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("attack as uid %d: %v\n%s", nobody, err, out)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Chown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// victim is a root-owned file outside the data directory an attacker
// would like root to overwrite.
func victim(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(p, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func assertIntact(t *testing.T, p string) {
	t.Helper()
	if b, err := os.ReadFile(p); err != nil || string(b) != "precious\n" {
		t.Errorf("%s now holds %q (%v), want it untouched", p, b, err)
	}
}

func assertUnsafe(t *testing.T, err error, want ...string) {
	t.Helper()
	if !errors.Is(err, safeperm.ErrUnsafe) {
		t.Fatalf("error = %v, want safeperm.ErrUnsafe", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// TestLockSymlinkAttack: a user who can write to the data directory plants
// update.lock as a symlink to a root file. The data directory is refused;
// and even past that check the lock is not opened through the link.
func TestLockSymlinkAttack(t *testing.T) {
	tr := attackRoot(t)
	target := victim(t)
	chown(t, tr.DataDir(), nobody)
	asNobody(t, "ln -s "+target+" "+tr.LockPath())

	_, err := tr.Lock(t.Context(), 0)
	assertIntact(t, target)
	assertUnsafe(t, err, tr.DataDir(), "owned by uid 65534")

	_, err = AcquireLock(t.Context(), tr.LockPath(), 0)
	assertIntact(t, target)
	assertUnsafe(t, err, tr.LockPath(), "is a symlink")
}

// TestLockHardLinkRefused: a lock file that is another name of a root file
// (planted while the data directory was open) is not truncated.
func TestLockHardLinkRefused(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(tr.DataDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(target, tr.LockPath()); err != nil {
		t.Skipf("cannot hard link across the temporary directories: %v", err)
	}
	_, err := tr.Lock(t.Context(), 0)
	assertUnsafe(t, err, tr.LockPath(), "2 hard links")
	assertIntact(t, target)
}

// TestLockRefusesUnsafeDataDir: a data directory, a directory above it or
// the versions directory that others can write to is refused by name.
func TestLockRefusesUnsafeDataDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		dir  func(*Tree) string
		mode os.FileMode
		want string
	}{
		{name: "group-writable data dir", dir: (*Tree).DataDir, mode: 0o775, want: "mode 0775 is group/world-writable"},
		{name: "world-writable data dir", dir: (*Tree).DataDir, mode: 0o777, want: "mode 0777 is group/world-writable"},
		{name: "world-writable parent", dir: func(tr *Tree) string { return filepath.Join(tr.Root, "var") }, mode: 0o777 | os.ModeSticky, want: "mode 0777"},
		{name: "group-writable versions", dir: (*Tree).VersionsDir, mode: 0o770, want: "mode 0770"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := New(t.TempDir())
			if err := os.MkdirAll(tr.VersionsDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(tt.dir(tr), tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := tr.Lock(t.Context(), 0)
			assertUnsafe(t, err, tt.dir(tr)+": "+tt.want)
			if _, err := os.Lstat(tr.LockPath()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("update.lock was created in a refused data directory (%v)", err)
			}
		})
	}
	t.Run("safe", func(t *testing.T) {
		t.Parallel()
		release, err := New(t.TempDir()).Lock(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := release(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestForgedVersionRefused: uid 65534, given write access to the versions
// directory, forges a complete-looking version (binaries and a .verified
// holding a checksum). After the directory is root's again, the forged
// version is still refused as untrusted: it is not installed, not listed,
// not linked and never run.
func TestForgedVersionRefused(t *testing.T) {
	tests := []struct {
		name string
		// forge runs the attack; vdir is versions/6.6.6.
		forge func(t *testing.T, tr *Tree, vdir string)
		want  string
	}{
		{
			name: "directory of another user",
			forge: func(t *testing.T, tr *Tree, vdir string) {
				chown(t, tr.VersionsDir(), nobody)
				asNobody(t, forgeScript(tr, vdir))
				chown(t, tr.VersionsDir(), 0)
			},
			want: "versions/6.6.6: owned by uid 65534",
		},
		{
			name: "marker of another user in a root directory",
			forge: func(t *testing.T, tr *Tree, vdir string) {
				mustMkdir(t, vdir, 0o777)
				asNobody(t, forgeScript(tr, vdir))
				if err := os.Chmod(vdir, 0o755); err != nil {
					t.Fatal(err)
				}
			},
			want: "versions/6.6.6/.verified: owned by uid 65534",
		},
		{
			name: "world-writable version directory",
			forge: func(t *testing.T, tr *Tree, vdir string) {
				mustMkdir(t, vdir, 0o777)
				asNobody(t, forgeScript(tr, vdir))
				chown(t, filepath.Join(vdir, verifiedName), 0)
			},
			want: "versions/6.6.6: mode 0777",
		},
		{
			name: "version directory is a symlink to the attacker's",
			forge: func(t *testing.T, tr *Tree, vdir string) {
				theirs := filepath.Join(tr.Root, "tmp-nobody")
				mustMkdir(t, theirs, 0o755)
				chown(t, theirs, nobody)
				asNobody(t, forgeScript(tr, theirs))
				chown(t, filepath.Join(theirs, verifiedName), 0)
				if err := os.Symlink(theirs, vdir); err != nil {
					t.Fatal(err)
				}
			},
			want: "versions/6.6.6: is a symlink",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := attackRoot(t)
			install(t, tr, "1.0.0")
			if _, err := tr.Link("1.0.0", false); err != nil {
				t.Fatal(err)
			}
			vdir := tr.VersionDir("6.6.6")
			tt.forge(t, tr, vdir)
			ran := forgedRan(tr)

			_, _, err := tr.Installed("6.6.6")
			assertUnsafe(t, err, tt.want)
			_, err = tr.Versions()
			assertUnsafe(t, err, tt.want)
			_, err = tr.Link("6.6.6", false)
			assertUnsafe(t, err, tt.want)
			if v, err := tr.LinkedVersion(); err != nil || v != "1.0.0" {
				t.Errorf("linked version = %q, %v; want 1.0.0 still", v, err)
			}
			if err := CheckExec(t.Context(), filepath.Join(tr.BinDir(), "teleport"), "1.0.0"); err != nil {
				t.Errorf("the linked teleport is not 1.0.0's: %v", err)
			}
			if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the forged binary ran as root")
			}
			if err := tr.CheckDataDir(); err != nil {
				t.Errorf("CheckDataDir after the directory is root's again: %v", err)
			}
		})
	}
}

// forgeScript writes a version that looks complete into dir: a teleport
// that leaves a mark (forgedRan) when run, and a .verified holding a
// checksum.
func forgeScript(tr *Tree, dir string) string {
	ran := forgedRan(tr)
	return "mkdir -p " + dir + "/bin\n" +
		"printf '#!/bin/sh\\ntouch " + ran + "\\necho Teleport v6.6.6\\n' > " + dir + "/bin/teleport\n" +
		"chmod 755 " + dir + "/bin/teleport\n" +
		"printf '%064d\\n' 0 > " + dir + "/" + verifiedName + "\n"
}

func forgedRan(tr *Tree) string { return filepath.Join(tr.Root, "forged-binary-ran") }

func mustMkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}
