package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockRetry is how often a waiting AcquireLock tries again.
const lockRetry = 100 * time.Millisecond

// AcquireLock takes an exclusive flock(2) on path (created 0600 if needed,
// with its parent directory), so one teleport-update runs at a time. The
// holder's PID is written into the file for the error message of the next
// one; the file itself is never removed (removing it would let two runs
// lock two different files).
//
// wait < 0 waits until ctx is done (the timer run); wait >= 0 gives up
// after wait (interactive commands) with ErrLocked naming the holder's PID.
// release unlocks and closes; the lock also ends when the process dies.
func AcquireLock(ctx context.Context, path string, wait time.Duration) (release func() error, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("acquire update lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("acquire update lock: %w", err)
	}
	var deadline <-chan time.Time
	if wait >= 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		deadline = timer.C
	}
	ticker := time.NewTicker(lockRetry)
	defer ticker.Stop()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("acquire update lock %s: %w", path, err)
		}
		if wait == 0 {
			f.Close()
			return nil, lockedError(path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("acquire update lock %s: %w", path, ctx.Err())
		case <-deadline:
			f.Close()
			return nil, lockedError(path)
		case <-ticker.C:
		}
	}
	// Record our PID for whoever waits next; best effort.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	released := false
	return func() error {
		if released {
			return nil
		}
		released = true
		_ = f.Truncate(0)
		err := unix.Flock(int(f.Fd()), unix.LOCK_UN)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("release update lock %s: %w", path, err)
		}
		return nil
	}, nil
}

// maxLockFileRead bounds how much of the lock file is read for the PID.
const maxLockFileRead = 64

func lockedError(path string) error {
	holder := "unknown pid"
	if f, err := os.Open(path); err == nil {
		b, _ := io.ReadAll(io.LimitReader(f, maxLockFileRead))
		f.Close()
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			holder = "pid " + strconv.Itoa(pid) + "?"
		}
	}
	return fmt.Errorf("%w: another teleport-update is running (%s); lock %s", ErrLocked, holder, path)
}
