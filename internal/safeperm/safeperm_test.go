package safeperm

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDirs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(t *testing.T, root string)
		wantErr error
		wantMsg string
	}{
		{name: "safe", setup: func(*testing.T, string) {}},
		{
			name:    "group-writable",
			setup:   func(t *testing.T, root string) { chmod(t, filepath.Join(root, "a/b"), 0o775) },
			wantErr: ErrUnsafe, wantMsg: "a/b: mode 0775 is group/world-writable",
		},
		{
			name:    "world-writable sticky",
			setup:   func(t *testing.T, root string) { chmod(t, filepath.Join(root, "a"), 0o1777) },
			wantErr: ErrUnsafe, wantMsg: "a: mode 0777 is group/world-writable",
		},
		{
			name: "symlink below the root",
			setup: func(t *testing.T, root string) {
				must(t, os.Rename(filepath.Join(root, "a/b"), filepath.Join(root, "real")))
				must(t, os.Symlink("../real", filepath.Join(root, "a/b")))
			},
			wantErr: ErrUnsafe, wantMsg: "a/b: is a symlink",
		},
		{
			name: "file instead of directory",
			setup: func(t *testing.T, root string) {
				must(t, os.RemoveAll(filepath.Join(root, "a/b")))
				must(t, os.WriteFile(filepath.Join(root, "a/b"), nil, 0o644))
			},
			wantErr: ErrUnsafe, wantMsg: "a/b: is not a directory",
		},
		{
			name:    "missing",
			setup:   func(t *testing.T, root string) { must(t, os.RemoveAll(filepath.Join(root, "a/b"))) },
			wantErr: fs.ErrNotExist,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			must(t, os.MkdirAll(filepath.Join(root, "a/b"), 0o755))
			tt.setup(t, root)
			err := CheckDirs(root, "a/b")
			if !errors.Is(err, tt.wantErr) || (err != nil && !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Fatalf("CheckDirs = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

// TestCheckDirsRootSymlink: the root is the caller's choice and is followed.
func TestCheckDirsRootSymlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "real/a"), 0o755))
	must(t, os.Symlink("real", filepath.Join(dir, "root")))
	if err := CheckDirs(filepath.Join(dir, "root"), "a"); err != nil {
		t.Fatal(err)
	}
	if err := CheckDirs(filepath.Join(dir, "root"), "a/../.."); err == nil {
		t.Fatal("a path leaving the root was accepted")
	}
}

// TestCheckOwner: a file owned by another user fails, root's and ours pass.
func TestCheckOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(p, nil, 0o644))
	fi, err := os.Lstat(p)
	must(t, err)
	if err := Check(p, fi, false); err != nil {
		t.Fatalf("root-owned file: %v", err)
	}
	must(t, os.Chown(p, 65534, 65534))
	fi, err = os.Lstat(p)
	must(t, err)
	if err := Check(p, fi, false); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("Check = %v, want ErrUnsafe naming uid 65534", err)
	}
	if r := Reason(fi, false, 65534); r != "" {
		t.Fatalf("Reason for its owner = %q, want \"\"", r)
	}
}

func chmod(t *testing.T, p string, mode fs.FileMode) {
	t.Helper()
	if mode&0o1000 != 0 {
		mode = mode&^0o1000 | fs.ModeSticky
	}
	must(t, os.Chmod(p, mode))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
