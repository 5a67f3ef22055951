package install

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLinkSwapAndRevert(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	install(t, tr, "1.0.0", "tsh")
	install(t, tr, "2.0.0", "tbot", "teleport-update")
	mustWrite(t, filepath.Join(tr.BinDir(), "unrelated"), "keep")
	mustWrite(t, filepath.Join(tr.BinDir(), "teleport-update"), "the updater")
	if err := os.Symlink("/usr/bin/env", filepath.Join(tr.BinDir(), "foreign-link")); err != nil {
		t.Fatal(err)
	}

	if _, err := tr.Link("1.0.0", false); err != nil {
		t.Fatalf("Link(1.0.0): %v", err)
	}
	before := snapshot(t, tr.BinDir())
	wantBefore := map[string]string{
		"teleport": "link ../../../var/lib/teleport-update/versions/1.0.0/bin/teleport",
		"tctl":     "link ../../../var/lib/teleport-update/versions/1.0.0/bin/tctl",
		"tsh":      "link ../../../var/lib/teleport-update/versions/1.0.0/bin/tsh",
	}
	for k, v := range wantBefore {
		if before[k] != v {
			t.Errorf("after Link(1.0.0): %s = %q, want %q", k, before[k], v)
		}
	}
	// The links resolve to the binaries.
	if b, err := os.ReadFile(filepath.Join(tr.BinDir(), "teleport")); err != nil || string(b) != versionScript("1.0.0") {
		t.Errorf("teleport link reads %q, %v", b, err)
	}
	if v, err := tr.LinkedVersion(); err != nil || v != "1.0.0" {
		t.Errorf("LinkedVersion() = %q, %v; want 1.0.0", v, err)
	}

	revert, err := tr.Link("2.0.0", false)
	if err != nil {
		t.Fatalf("Link(2.0.0): %v", err)
	}
	after := snapshot(t, tr.BinDir())
	wantAfter := map[string]string{
		"teleport": "link ../../../var/lib/teleport-update/versions/2.0.0/bin/teleport",
		"tctl":     "link ../../../var/lib/teleport-update/versions/2.0.0/bin/tctl",
		"tbot":     "link ../../../var/lib/teleport-update/versions/2.0.0/bin/tbot",
		"tsh":      "", // 2.0.0 has no tsh: the old link is gone
	}
	for k, v := range wantAfter {
		if after[k] != v {
			t.Errorf("after Link(2.0.0): %s = %q, want %q", k, after[k], v)
		}
	}
	if after["unrelated"] != before["unrelated"] || after["foreign-link"] != before["foreign-link"] ||
		after["teleport-update"] != before["teleport-update"] {
		t.Error("Link touched files that are not its own")
	}
	if vs, err := tr.LinkedVersions(); err != nil || !slices.Equal(vs, []string{"2.0.0"}) {
		t.Errorf("LinkedVersions() = %v, %v", vs, err)
	}

	if err := revert(); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if got := snapshot(t, tr.BinDir()); !maps.Equal(got, before) {
		t.Errorf("after revert:\n%v\nwant:\n%v", got, before)
	}
}

func TestLinkForeign(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(t *testing.T, p string)
	}{
		{"regular file", func(t *testing.T, p string) { mustWrite(t, p, "operator's own teleport") }},
		{"foreign symlink", func(t *testing.T, p string) {
			if err := os.Symlink("/opt/teleport/bin/teleport", p); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := New(t.TempDir())
			install(t, tr, "1.0.0")
			if err := os.MkdirAll(tr.BinDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, filepath.Join(tr.BinDir(), "teleport"))
			before := snapshot(t, tr.BinDir())

			if _, err := tr.Link("1.0.0", false); !errors.Is(err, ErrNotOurs) {
				t.Fatalf("Link without overwrite = %v, want ErrNotOurs", err)
			}
			if got := snapshot(t, tr.BinDir()); !maps.Equal(got, before) {
				t.Fatalf("refused Link changed the bin dir: %v", sortedKeys(got))
			}

			revert, err := tr.Link("1.0.0", true)
			if err != nil {
				t.Fatalf("Link with overwrite: %v", err)
			}
			if got := snapshot(t, tr.BinDir())["teleport"]; got != "link "+linkTarget(t, tr, "1.0.0", "teleport") {
				t.Errorf("teleport = %q after overwrite", got)
			}
			if err := revert(); err != nil {
				t.Fatalf("revert: %v", err)
			}
			if got := snapshot(t, tr.BinDir()); !maps.Equal(got, before) {
				t.Errorf("after revert:\n%v\nwant:\n%v", got, before)
			}
		})
	}
}

func TestLinkRefusesDirectoryAndMissingVersion(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	if _, err := tr.Link("1.0.0", true); !errors.Is(err, ErrVersionNotInstalled) {
		t.Errorf("Link(not installed) = %v, want ErrVersionNotInstalled", err)
	}
	install(t, tr, "1.0.0")
	if err := os.MkdirAll(filepath.Join(tr.BinDir(), "tctl"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Link("1.0.0", true); !errors.Is(err, ErrNotOurs) {
		t.Errorf("Link over a directory = %v, want ErrNotOurs", err)
	}
	if _, err := os.Lstat(filepath.Join(tr.BinDir(), "teleport")); !os.IsNotExist(err) {
		t.Errorf("refused Link created teleport: %v", err)
	}
}

func TestUnlink(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	install(t, tr, "1.0.0")
	if _, err := tr.Link("1.0.0", false); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(tr.BinDir(), "other"), "keep")
	removed, err := tr.Unlink()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(tr.BinDir(), "tctl"), filepath.Join(tr.BinDir(), "teleport")}
	if !slices.Equal(removed, want) {
		t.Errorf("Unlink() = %v, want %v", removed, want)
	}
	if got := sortedKeys(snapshot(t, tr.BinDir())); strings.Join(got, ",") != ".,other" {
		t.Errorf("bin dir after Unlink: %v", got)
	}
	if v, err := tr.LinkedVersion(); err != nil || v != "" {
		t.Errorf("LinkedVersion() after Unlink = %q, %v", v, err)
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		keep        []string
		wantRemoved []string
		wantLeft    []string
	}{
		{"keep active and backup", []string{"3.0.0", "4.0.0"}, []string{"1.0.0", "10.0.0"}, []string{"2.0.0", "3.0.0", "4.0.0"}},
		{"keep nothing", nil, []string{"1.0.0", "3.0.0", "4.0.0", "10.0.0"}, []string{"2.0.0"}},
		{"keep empty backup", []string{"4.0.0", ""}, []string{"1.0.0", "3.0.0", "10.0.0"}, []string{"2.0.0", "4.0.0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := New(t.TempDir())
			for _, v := range []string{"1.0.0", "2.0.0", "3.0.0", "4.0.0", "10.0.0"} {
				install(t, tr, v)
			}
			if _, err := tr.Link("2.0.0", false); err != nil {
				t.Fatal(err)
			}
			removed, err := tr.Prune(tc.keep...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(removed, tc.wantRemoved) {
				t.Errorf("Prune() removed %v, want %v", removed, tc.wantRemoved)
			}
			if left, _ := tr.Versions(); !slices.Equal(left, tc.wantLeft) {
				t.Errorf("Versions() = %v, want %v", left, tc.wantLeft)
			}
		})
	}
}

func TestRemoveVersion(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	install(t, tr, "1.0.0")
	install(t, tr, "2.0.0")
	if _, err := tr.Link("1.0.0", false); err != nil {
		t.Fatal(err)
	}
	if err := tr.RemoveVersion("1.0.0"); !errors.Is(err, ErrInUse) {
		t.Errorf("RemoveVersion(linked) = %v, want ErrInUse", err)
	}
	if err := tr.RemoveVersion("2.0.0"); err != nil {
		t.Errorf("RemoveVersion(2.0.0) = %v", err)
	}
	if err := tr.RemoveVersion("2.0.0"); err != nil {
		t.Errorf("RemoveVersion(absent) = %v, want nil", err)
	}
	if vs, _ := tr.Versions(); !slices.Equal(vs, []string{"1.0.0"}) {
		t.Errorf("Versions() = %v", vs)
	}
	if left, _ := os.ReadDir(tr.StagingDir()); len(left) != 0 {
		t.Errorf("RemoveVersion left %v in staging", left)
	}
}

func TestBinaries(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	p, sum := makeTarball(t, []ent{
		exe("bin/teleport", "T"), exe("bin/tsh", "S"), file("bin/README", "not exec"),
		exe("bin/.hidden", "H"), symlink("bin/tbot", "teleport"), symlink("bin/dangling", "nothing"),
	})
	if err := tr.Extract(t.Context(), p, "1.0.0", sum, testLimits); err != nil {
		t.Fatal(err)
	}
	got, err := tr.Binaries("1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"tbot", "teleport", "tsh"}; !slices.Equal(got, want) {
		t.Errorf("Binaries() = %v, want %v", got, want)
	}
}

// TestInterruptedSwap: a run killed between two link swaps leaves links to
// two versions; both count as linked, so neither is pruned nor replaced,
// and linking again repairs the tree.
func TestInterruptedSwap(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	install(t, tr, "1.0.0")
	install(t, tr, "2.0.0")
	install(t, tr, "3.0.0")
	if _, err := tr.Link("1.0.0", false); err != nil {
		t.Fatal(err)
	}
	// Killed after swapping teleport, before tctl.
	if err := swapSymlink(filepath.Join(tr.BinDir(), "teleport"), linkTarget(t, tr, "2.0.0", "teleport")); err != nil {
		t.Fatal(err)
	}
	if vs, err := tr.LinkedVersions(); err != nil || !slices.Equal(vs, []string{"1.0.0", "2.0.0"}) {
		t.Errorf("LinkedVersions() = %v, %v; want both", vs, err)
	}
	if v, _ := tr.LinkedVersion(); v != "2.0.0" {
		t.Errorf("LinkedVersion() = %q, want the teleport link's 2.0.0", v)
	}
	if removed, err := tr.Prune(); err != nil || !slices.Equal(removed, []string{"3.0.0"}) {
		t.Errorf("Prune() = %v, %v; want only 3.0.0", removed, err)
	}
	// An incomplete but linked version is neither cleaned nor re-extracted.
	if err := os.Remove(filepath.Join(tr.VersionDir("1.0.0"), verifiedName)); err != nil {
		t.Fatal(err)
	}
	p, sum := makeTarball(t, release("1.0.0"))
	if err := tr.Extract(t.Context(), p, "1.0.0", sum, testLimits); !errors.Is(err, ErrInUse) {
		t.Errorf("Extract over a linked incomplete version = %v, want ErrInUse", err)
	}
	if _, err := tr.Link("2.0.0", false); err != nil {
		t.Fatal(err)
	}
	if vs, _ := tr.LinkedVersions(); !slices.Equal(vs, []string{"2.0.0"}) {
		t.Errorf("LinkedVersions() after relinking = %v", vs)
	}
}

// linkTarget is the target of tr's link for binary name of version v.
func linkTarget(t *testing.T, tr *Tree, v, name string) string {
	t.Helper()
	l, err := tr.linkLayout()
	if err != nil {
		t.Fatal(err)
	}
	return l.target(v, name)
}
