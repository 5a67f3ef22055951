package install

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// decoy puts a teleport that is not any installed version's where rel
// (relative to the root) would lead.
func decoy(t *testing.T, tr *Tree, rel string) {
	t.Helper()
	mustWrite(t, filepath.Join(tr.Root, rel, "1.0.0/bin/teleport"), versionScript("6.6.6"))
	if err := os.Chmod(filepath.Join(tr.Root, rel, "1.0.0/bin/teleport"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlinkIn(t *testing.T, root, rel, target string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// TestLinkThroughSymlinkedDirs: when usr/local (or a directory around it)
// is a symlink, the links still reach the version's binaries, inside the
// root, and a binary planted where a fixed "../../../" would land is not
// what they run.
func TestLinkThroughSymlinkedDirs(t *testing.T) {
	t.Parallel()
	hostDir := "/opt/teleport-update-test-" + randomSuffix()
	tests := []struct {
		name    string
		layout  func(t *testing.T, root string)
		realBin string // usr/local/bin resolved, relative to the root
		lexical bool   // root/usr/local/bin/<name> may be opened as is
	}{
		{
			name:    "usr/local to a deeper directory",
			layout:  func(t *testing.T, root string) { symlinkIn(t, root, "usr/local", "../opt/vendor/local") },
			realBin: "opt/vendor/local/bin", lexical: true,
		},
		{
			name:    "usr/local to a directory as deep",
			layout:  func(t *testing.T, root string) { symlinkIn(t, root, "usr/local", "../opt/local") },
			realBin: "opt/local/bin", lexical: true,
		},
		{
			name:    "usr/local/bin to a shallower directory",
			layout:  func(t *testing.T, root string) { symlinkIn(t, root, "usr/local/bin", "../../bin") },
			realBin: "bin", lexical: true,
		},
		{
			name: "usr to a deeper directory through two links",
			layout: func(t *testing.T, root string) {
				symlinkIn(t, root, "usr", "system/usr")
				symlinkIn(t, root, "system", "data/sys")
			},
			realBin: "data/sys/usr/local/bin", lexical: true,
		},
		{
			name:    "usr/local to an absolute path, resolved inside the root",
			layout:  func(t *testing.T, root string) { symlinkIn(t, root, "usr/local", hostDir+"/local") },
			realBin: strings.TrimPrefix(hostDir, "/") + "/local/bin",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := New(t.TempDir())
			tt.layout(t, tr.Root)
			if err := os.MkdirAll(filepath.Join(tr.Root, tt.realBin), 0o755); err != nil {
				t.Fatal(err)
			}
			install(t, tr, "1.0.0")
			install(t, tr, "2.0.0")
			// Where "../../../var/lib/teleport/versions" leads from the
			// real link directory.
			legacy, err := filepath.Rel(tr.Root, filepath.Join(tr.Root, tt.realBin, "../../../"+versionsRel))
			if err == nil && !strings.HasPrefix(legacy, "..") && legacy != versionsRel {
				decoy(t, tr, legacy)
			}

			if _, err := tr.Link("1.0.0", false); err != nil {
				t.Fatalf("Link(1.0.0): %v", err)
			}
			realBin := filepath.Join(tr.Root, tt.realBin)
			assertRuns(t, filepath.Join(realBin, "teleport"), "1.0.0")
			if tt.lexical {
				assertRuns(t, filepath.Join(tr.BinDir(), "teleport"), "1.0.0")
			}
			if v, err := tr.LinkedVersion(); err != nil || v != "1.0.0" {
				t.Errorf("LinkedVersion() = %q, %v; want 1.0.0", v, err)
			}

			revert, err := tr.Link("2.0.0", false)
			if err != nil {
				t.Fatalf("Link(2.0.0): %v", err)
			}
			assertRuns(t, filepath.Join(realBin, "tctl"), "")
			assertRuns(t, filepath.Join(realBin, "teleport"), "2.0.0")
			if err := revert(); err != nil {
				t.Fatal(err)
			}
			assertRuns(t, filepath.Join(realBin, "teleport"), "1.0.0")

			removed, err := tr.Unlink()
			if want := []string{filepath.Join(realBin, "tctl"), filepath.Join(realBin, "teleport")}; err != nil || !slices.Equal(removed, want) {
				t.Errorf("Unlink() = %v, %v; want %v", removed, err, want)
			}
			if _, err := os.Lstat(hostDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s was created outside the root (%v)", hostDir, err)
			}
		})
	}
}

// TestLinkReplacesLegacyTarget: a link made with the fixed "../../../"
// prefix, which leads elsewhere once usr/local is a symlink, is still
// recognised as ours and replaced by one that reaches the version.
func TestLinkReplacesLegacyTarget(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	symlinkIn(t, tr.Root, "usr/local", "../opt/vendor/local")
	if err := os.MkdirAll(filepath.Join(tr.Root, "opt/vendor/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, tr, "1.0.0")
	decoy(t, tr, "opt/"+versionsRel)
	symlinkIn(t, tr.Root, "usr/local/bin/teleport", legacyLinkPrefixes[0]+"1.0.0/bin/teleport")
	assertRuns(t, filepath.Join(tr.BinDir(), "teleport"), "6.6.6") // what the fixed prefix ran

	if vs, err := tr.LinkedVersions(); err != nil || !slices.Equal(vs, []string{"1.0.0"}) {
		t.Errorf("LinkedVersions() = %v, %v; want the legacy link's 1.0.0", vs, err)
	}
	if _, err := tr.Link("1.0.0", false); err != nil {
		t.Fatalf("Link(1.0.0): %v", err)
	}
	assertRuns(t, filepath.Join(tr.BinDir(), "teleport"), "1.0.0")
	if got, want := readlink(t, filepath.Join(tr.BinDir(), "teleport")), "../../../../"+versionsRel+"/1.0.0/bin/teleport"; got != want {
		t.Errorf("link target = %q, want %q", got, want)
	}
}

// TestLinkCheckCatchesMisresolution: the link directory is moved behind a
// symlink at another depth while Link runs, so the links it just made
// lead to a planted binary. The check after linking refuses and reverts.
func TestLinkCheckCatchesMisresolution(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	symlinkIn(t, tr.Root, "usr/local", "../opt/vendor/local")
	if err := os.MkdirAll(filepath.Join(tr.Root, "opt/vendor/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	install(t, tr, "1.0.0")
	decoy(t, tr, "deep/"+versionsRel)
	planted := filepath.Join(tr.Root, "deep", versionsRel, "1.0.0/bin/tctl")
	mustWrite(t, planted, "#!/bin/sh\n")
	moved := false
	tr.AfterStep = func(step string) {
		if step != StepLinkBinary || moved { // the first binary: tctl
			return
		}
		moved = true
		real := filepath.Join(tr.Root, "opt/vendor/local")
		elsewhere := filepath.Join(tr.Root, "deep/x/y/local")
		if err := os.MkdirAll(filepath.Dir(elsewhere), 0o755); err != nil {
			t.Error(err)
		}
		if err := os.Rename(real, elsewhere); err != nil {
			t.Error(err)
		}
		if err := os.Symlink("../../deep/x/y/local", real); err != nil {
			t.Error(err)
		}
	}

	_, err := tr.Link("1.0.0", false)
	if err == nil || !strings.Contains(err.Error(), "resolves to "+planted+", not to ") {
		t.Fatalf("Link = %v, want an error naming where the link leads", err)
	}
	if !moved {
		t.Fatal("the link directory was never moved")
	}
	if links, err := tr.ourLinks(); err != nil || len(links) != 0 {
		t.Errorf("links after the failed Link: %v, %v; want none (reverted)", links, err)
	}
}

// TestResolveIn covers the resolver's edge cases: ".." and absolute
// targets stay inside the root, missing components are kept, loops end.
func TestResolveIn(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	symlinkIn(t, root, "a/up", "../../../../..")
	symlinkIn(t, root, "a/abs", "/b")
	symlinkIn(t, root, "loop1", "loop2")
	symlinkIn(t, root, "loop2", "loop1")
	tests := []struct{ rel, want string }{
		{"a/up/b/c", "b/c"},
		{"a/abs/c", "b/c"},
		{"missing/../a/./abs", "b"},
		{"../../x", "x"},
	}
	for _, tt := range tests {
		got, err := resolveIn(root, tt.rel)
		if err != nil || got != filepath.Join(root, tt.want) {
			t.Errorf("resolveIn(%q) = %q, %v; want %q", tt.rel, got, err, filepath.Join(root, tt.want))
		}
	}
	if _, err := resolveIn(root, "loop1/x"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("resolveIn of a loop = %v, want too many levels", err)
	}
}

// assertRuns checks that the file at p is version v's teleport script (or,
// with v "", merely exists).
func assertRuns(t *testing.T, p, v string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	if v != "" && string(b) != versionScript(v) {
		t.Errorf("%s is %q, want version %s's teleport", p, b, v)
	}
}

func readlink(t *testing.T, p string) string {
	t.Helper()
	target, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return target
}
