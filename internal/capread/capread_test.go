package capread

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	os.WriteFile(path, []byte("12345"), 0o644)
	for _, tc := range []struct {
		max     int64
		wantErr error
	}{{5, nil}, {100, nil}, {4, ErrTooLarge}, {0, ErrTooLarge}} {
		data, err := File(path, tc.max)
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("max %d: err %v, want %v", tc.max, err, tc.wantErr)
		}
		if err == nil && string(data) != "12345" {
			t.Fatalf("max %d: read %q", tc.max, data)
		}
		if err != nil && (!strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "larger than")) {
			t.Fatalf("error %q does not name the file and the limit", err)
		}
	}
	if _, err := File(filepath.Join(dir, "missing"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
