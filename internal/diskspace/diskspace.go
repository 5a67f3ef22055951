// Package diskspace refuses a large write up front when the filesystem
// cannot take it, with an error that says how much is needed and free, and
// labels a write that ran out of room anyway.
package diskspace

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrNoSpace: not enough free disk space; the error says needed and free.
var ErrNoSpace = errors.New("not enough free disk space")

// DefaultReserve is the free space teleport-update leaves on the install
// filesystem after a download or an extraction, so an update never fills
// the disk the agent and the rest of the host write to.
const DefaultReserve = 256 << 20

// Free returns the bytes available to unprivileged writers on the
// filesystem holding path.
func Free(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("check free space on %s: %w", path, err)
	}
	size := int64(st.Frsize)
	if size <= 0 {
		size = int64(st.Bsize)
	}
	return int64(st.Bavail) * size, nil
}

// Check fails with ErrNoSpace unless the filesystem holding dir has
// need+reserve bytes available; what says what need is for ("to unpack").
//
// Outcomes: nil; an error wrapping ErrNoSpace naming dir and the needed,
// reserved and free bytes; the statfs error naming dir.
func Check(dir string, need, reserve int64, what string) error {
	free, err := Free(dir)
	if err != nil {
		return err
	}
	if free < need+reserve {
		return fmt.Errorf("%w on %s: need %d bytes (%d %s + %d reserve), %d available",
			ErrNoSpace, dir, need+reserve, need, what, reserve, free)
	}
	return nil
}

// Label wraps err with ErrNoSpace when it is ENOSPC or EDQUOT, so callers
// can tell a full disk from other write errors; other errors are returned
// as they are.
func Label(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}
