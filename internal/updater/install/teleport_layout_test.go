package install

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// teleportRelease is a release in Teleport's own layout under top, as its
// CDN publishes it: binaries at the top, an install script, examples and
// the docs.
func teleportRelease(top string) []ent {
	elf := "\x7fELF binary"
	return []ent{
		dir(top + "/"),
		exe(top+"/teleport", elf+" teleport"),
		exe(top+"/tctl", elf+" tctl"),
		exe(top+"/tsh", elf+" tsh"),
		exe(top+"/tbot", elf+" tbot"),
		exe(top+"/fdpass-teleport", elf+" fdpass"),
		exe(top+"/teleport-update", elf+" updater"),
		exe(top+"/install", "#!/bin/bash\necho installing\n"),
		dir(top + "/examples/"),
		dir(top + "/examples/systemd/"),
		file(top+"/examples/systemd/teleport.service", "[Service]\nExecStart=/usr/local/bin/teleport start\n"),
		file(top+"/examples/systemd/fips/teleport.service", "[Service]\nExecStart=/usr/local/bin/teleport start --fips\n"),
		file(top+"/examples/local-cluster/teleport.yaml", "teleport: {}\n"),
		file(top+"/README.md", "readme"),
		file(top+"/CHANGELOG.md", "changes"),
		file(top+"/VERSION", "16.4.6\n"),
	}
}

func TestExtractTeleportLayout(t *testing.T) {
	t.Parallel()
	for _, top := range []string{"teleport", "teleport-ent"} {
		t.Run(top, func(t *testing.T) {
			t.Parallel()
			tr := New(t.TempDir())
			p, sum := writeTarball(t, gzipBytes(t, tarBytes(t, teleportRelease(top))))
			if err := tr.Extract(t.Context(), p, "16.4.6", sum, testLimits); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			got := snapshot(t, tr.VersionDir("16.4.6"))
			want := map[string]string{
				"bin/teleport":                        "-rwxr-xr-x \x7fELF binary teleport",
				"bin/tctl":                            "-rwxr-xr-x \x7fELF binary tctl",
				"bin/tsh":                             "-rwxr-xr-x \x7fELF binary tsh",
				"bin/tbot":                            "-rwxr-xr-x \x7fELF binary tbot",
				"bin/fdpass-teleport":                 "-rwxr-xr-x \x7fELF binary fdpass",
				"bin/teleport-update":                 "-rwxr-xr-x \x7fELF binary updater",
				"lib/systemd/system/teleport.service": "-rw-r--r-- [Service]\nExecStart=/usr/local/bin/teleport start\n",
				"share/README.md":                     "-rw-r--r-- readme",
				"share/CHANGELOG.md":                  "-rw-r--r-- changes",
				"share/VERSION":                       "-rw-r--r-- 16.4.6\n",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for k := range got {
				if strings.Contains(k, "install") || strings.Contains(k, "examples") || strings.HasPrefix(k, top) {
					t.Errorf("%s was installed; Teleport's layout skips it", k)
				}
			}
			bins, err := tr.Binaries("16.4.6")
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"fdpass-teleport", "tbot", "tctl", "teleport", "tsh"}; !slices.Equal(bins, want) {
				t.Errorf("Binaries = %q, want %q (teleport-update updates itself)", bins, want)
			}
		})
	}
}

func TestExtractTeleportLayoutRefuses(t *testing.T) {
	t.Parallel()
	good := teleportRelease("teleport")
	with := func(es ...ent) []ent { return append(append([]ent{}, good...), es...) }
	tests := []struct {
		name    string
		entries []ent
		lim     Limits
		wantMsg string
	}{
		{"entry outside the top directory", with(exe("bin/evil", "x")), testLimits, "outside the release's top directory"},
		{"entry of the other edition", with(exe("teleport-ent/teleport", "x")), testLimits, "outside the release's top directory"},
		{"dot dot under the top", with(file("teleport/../etc/passwd", "x")), testLimits, `".."`},
		{"symlink", with(symlink("teleport/tsh2", "tsh")), testLimits, "symlink"},
		{"symlink where the docs go", with(symlink("teleport/README.txt", "../../etc/shadow")), testLimits, "symlink"},
		{"skipped examples over the total", with(file("teleport/examples/huge", strings.Repeat("x", 4096))),
			Limits{MaxTotalSize: 4096, ReserveBytes: 1}, "total unpacked size"},
		{"two files for bin/teleport", with(exe("teleport/teleport", "again")), testLimits, "duplicate"},
		{"no teleport binary", []ent{dir("teleport/"), exe("teleport/tctl", "x")}, testLimits, "bin/teleport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := New(t.TempDir())
			p, sum := writeTarball(t, gzipBytes(t, tarBytes(t, tc.entries)))
			err := tr.Extract(t.Context(), p, "16.4.6", sum, tc.lim)
			if !errors.Is(err, ErrUnsafeArchive) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Extract() = %v, want ErrUnsafeArchive mentioning %q", err, tc.wantMsg)
			}
			if _, err := os.Lstat(tr.VersionDir("16.4.6")); !os.IsNotExist(err) {
				t.Errorf("version dir exists after refusal (err %v)", err)
			}
		})
	}
}

// A hard link inside Teleport's layout follows its target to bin/.
func TestExtractTeleportLayoutHardLink(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	es := append(teleportRelease("teleport"), hardlink("teleport/tsh-alias", "teleport/tsh"))
	p, sum := writeTarball(t, gzipBytes(t, tarBytes(t, es)))
	if err := tr.Extract(t.Context(), p, "16.4.6", sum, testLimits); err != nil {
		t.Fatal(err)
	}
	a, errA := os.Stat(filepath.Join(tr.VersionDir("16.4.6"), "bin/tsh-alias"))
	b, errB := os.Stat(filepath.Join(tr.VersionDir("16.4.6"), "bin/tsh"))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Fatalf("bin/tsh-alias is not a hard link of bin/tsh: %v %v", errA, errB)
	}
}

// Only Teleport's programs and executables that are not scripts are linked.
func TestBinariesSkipScripts(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	es := []ent{
		exe("bin/teleport", "#!/bin/sh\necho a script, but Teleport's program\n"),
		exe("bin/tctl", "#!/bin/sh\n"),
		exe("bin/helper.sh", "#!/bin/sh\necho helper\n"),
		exe("bin/newtool", "\x7fELF new binary"),
		exe("bin/teleport-update", "\x7fELF updater"),
		exe("bin/x", "#"), // shorter than a shebang
		file("bin/notes", "\x7fELF not executable"),
	}
	p, sum := writeTarball(t, gzipBytes(t, tarBytes(t, es)))
	if err := tr.Extract(t.Context(), p, "1.2.3", sum, testLimits); err != nil {
		t.Fatal(err)
	}
	bins, err := tr.Binaries("1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"newtool", "tctl", "teleport", "x"}; !slices.Equal(bins, want) {
		t.Fatalf("Binaries = %q, want %q", bins, want)
	}
}
