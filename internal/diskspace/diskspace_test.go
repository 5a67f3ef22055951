package diskspace

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := Check(dir, 1, 1, "to test"); err != nil {
		t.Fatalf("Check of 2 bytes: %v", err)
	}
	err := Check(dir, 1<<40, 1<<61, "to test")
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), dir+": need ") || !strings.Contains(err.Error(), " to test + ") {
		t.Fatalf("Check = %v, want ErrNoSpace naming %s and the bytes", err, dir)
	}
	if err := Check(dir+"/missing", 1, 1, "to test"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Check of a missing dir = %v, want ErrNotExist", err)
	}
}

func TestLabel(t *testing.T) {
	t.Parallel()
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		if err := Label(fmt.Errorf("write x: %w", errno)); !errors.Is(err, ErrNoSpace) || !errors.Is(err, errno) {
			t.Errorf("Label(%v) = %v, want ErrNoSpace wrapping it", errno, err)
		}
	}
	if err := Label(syscall.EIO); errors.Is(err, ErrNoSpace) {
		t.Errorf("Label(EIO) = %v, want it unchanged", err)
	}
}
