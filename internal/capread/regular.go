package capread

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular: the path names a named pipe, device, socket or directory
// where a regular file was expected.
var ErrNotRegular = errors.New("not a regular file")

// RegularFile is File for a path that must name a regular file. The open
// does not block (a named pipe without a writer would otherwise hang it),
// and the check is made on the opened file, so a pipe or device swapped in
// after a look at the path is refused all the same. Errors name the path;
// a missing file wraps fs.ErrNotExist, anything but a regular file
// ErrNotRegular.
func RegularFile(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: %w: it is %s", path, ErrNotRegular, fileKind(fi.Mode()))
	}
	data, err := All(f, max)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// fileKind names the type of a file that is not regular.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	default:
		return "not a regular file (mode " + m.String() + ")"
	}
}
