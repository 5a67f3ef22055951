// Package tmpfs mounts small tmpfs file systems for tests that need a real
// file system to fail: one that fills up (ENOSPC), or one remounted
// read-only (EROFS, which root cannot bypass as it bypasses file modes).
// Mounting needs root; without it the test is skipped.
package tmpfs

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new directory under t.TempDir()
// and returns that directory. It is unmounted when the test ends. The test
// is skipped when not running as root or when mounting is not permitted.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	MountAt(t, dir, size)
	return dir
}

// MountAt is Mount on an existing directory dir (mode 0755).
func MountAt(t testing.TB, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Skipf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		// Detach: a file a failed test left open must not fail the cleanup.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount tmpfs %s: %v", dir, err)
		}
	})
}

// ReadOnly remounts the tmpfs at dir (from Mount) read-only.
func ReadOnly(t testing.TB, dir string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount tmpfs %s read-only: %v", dir, err)
	}
}
