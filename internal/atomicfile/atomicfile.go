// Package atomicfile replaces files so that a reader, or the host after a
// crash, sees either the old content or the new one, never a mix or an
// empty file.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TempMarker is part of the name of every temporary file WriteFile creates
// next to its target (".<name>.teleport-update-tmp-<random>"), so a cleanup
// after a crash can recognise them.
const TempMarker = ".teleport-update-tmp"

// WriteFile replaces path with data: it writes a temporary file in the same
// directory, fsyncs it, renames it over path and fsyncs the directory, so
// the rename itself survives a crash. The parent directory must exist. On
// error the temporary file is removed and path is untouched.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFrom(path, bytes.NewReader(data), perm)
}

// WriteFrom is WriteFile with the content read from r to its end, so a
// large file is copied without being held in memory (from an *os.File,
// possibly without passing through this process at all).
func WriteFrom(path string, r io.Reader, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+TempMarker+"-*")
	if err != nil {
		return fmt.Errorf("write %s: create temporary file: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.ReadFrom(r); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: set mode: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: rename into place: %w", path, err)
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory so that renames and creations in it are
// durable. A filesystem that cannot fsync a directory (os.ErrInvalid) is
// not an error: there is nothing more to do on it.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
