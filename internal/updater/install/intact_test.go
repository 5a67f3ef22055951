package install

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// A version directory is trusted only while it still holds what every
// release has; a damaged one is removed even when linked.
func TestIntactAndRemoveDamaged(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(dir string) error
		want    error // from Intact
		removed bool
	}{
		{"intact", func(string) error { return nil }, nil, false},
		{"bin/teleport deleted", func(dir string) error { return os.Remove(filepath.Join(dir, "bin/teleport")) }, ErrDamaged, true},
		{"bin/teleport not executable", func(dir string) error { return os.Chmod(filepath.Join(dir, "bin/teleport"), 0o644) }, ErrDamaged, true},
		{"bin/teleport a directory", func(dir string) error {
			p := filepath.Join(dir, "bin/teleport")
			return errors.Join(os.Remove(p), os.Mkdir(p, 0o755))
		}, ErrDamaged, true},
		{"bin/teleport a symlink", func(dir string) error {
			p := filepath.Join(dir, "bin/teleport")
			return errors.Join(os.Rename(p, p+".real"), os.Symlink("teleport.real", p))
		}, ErrDamaged, true},
		{".verified deleted", func(dir string) error { return os.Remove(filepath.Join(dir, verifiedName)) }, ErrVersionNotInstalled, true},
		{"directory deleted", os.RemoveAll, ErrVersionNotInstalled, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(t.TempDir())
			install(t, tr, "1.0.0")
			if _, err := tr.Link("1.0.0", false); err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(tr.VersionDir("1.0.0")); err != nil {
				t.Fatal(err)
			}
			if err := tr.Intact("1.0.0"); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Intact: %v, want %v", err, tc.want)
			}
			removed, err := tr.RemoveDamaged("1.0.0")
			if err != nil || removed != tc.removed {
				t.Fatalf("RemoveDamaged: removed %v, %v; want removed %v", removed, err, tc.removed)
			}
			_, err = os.Lstat(tr.VersionDir("1.0.0"))
			if gone := errors.Is(err, fs.ErrNotExist); gone != (tc.want != nil) {
				t.Fatalf("after RemoveDamaged the directory is gone = %v (%v)", gone, err)
			}
			if left, _ := os.ReadDir(tr.StagingDir()); len(left) > 0 {
				t.Fatalf("staging left: %v", left)
			}
		})
	}
	if _, err := New(t.TempDir()).RemoveDamaged("../x"); !errors.Is(err, ErrInvalidVersion) {
		t.Fatalf("RemoveDamaged of a bad name: %v", err)
	}
}
