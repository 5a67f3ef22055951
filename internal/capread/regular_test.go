package capread

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRegularFile: a named pipe without a writer is refused at once instead
// of hanging the open, and so is a directory; a regular file is read with
// the same cap as File.
func TestRegularFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	regular := filepath.Join(dir, "f")
	if err := os.WriteFile(regular, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := RegularFile(regular, 5); err != nil || string(data) != "12345" {
		t.Errorf("RegularFile(regular) = %q, %v", data, err)
	}
	if _, err := RegularFile(regular, 4); !errors.Is(err, ErrTooLarge) {
		t.Errorf("RegularFile(regular, 4) = %v; want ErrTooLarge", err)
	}
	if _, err := RegularFile(filepath.Join(dir, "missing"), 5); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RegularFile(missing) = %v; want fs.ErrNotExist", err)
	}
	for _, tc := range []struct{ path, kind string }{{fifo, "named pipe"}, {dir, "directory"}} {
		_, err := RegularFile(tc.path, 5)
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.kind) {
			t.Errorf("RegularFile(%s) = %v; want ErrNotRegular naming the path and %q", tc.path, err, tc.kind)
		}
	}
}
