// Package capread reads outside data with a size cap: it reads at most
// max+1 bytes and fails when the extra byte arrives, so an oversized input
// is refused without being read to its end.
package capread

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge: the input holds more than the allowed bytes.
var ErrTooLarge = errors.New("too large")

// All reads r to EOF, failing with ErrTooLarge past max bytes.
func All(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrTooLarge, max)
	}
	return data, nil
}

// File reads the file at path, failing with ErrTooLarge past max bytes.
// Errors name the path; a missing file wraps fs.ErrNotExist.
func File(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := All(f, max)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}
