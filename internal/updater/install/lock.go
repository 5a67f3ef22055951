package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gravitational/teleport-update/internal/safeperm"
)

// lockRetry is how often a waiting AcquireLock tries again.
const lockRetry = 100 * time.Millisecond

// AcquireLock takes an exclusive flock(2) on path (created 0600 if needed,
// with its parent directory), so one teleport-update runs at a time. The
// holder's PID is written into the file for the error message of the next
// one; the file itself is never removed (removing it would let two runs
// lock two different files).
//
// path is opened without following a symlink, and must be a regular file
// with one link that passes the safeperm rule: a lock planted as a link to
// another file would otherwise have that file truncated by root.
//
// wait < 0 waits until ctx is done (the timer run); wait >= 0 gives up
// after wait (interactive commands) with ErrLocked naming the holder's PID.
// release unlocks and closes; the lock also ends when the process dies.
// Outcomes: ErrLocked, an error wrapping safeperm.ErrUnsafe naming path,
// the context's error, or the error of creating or opening the file.
func AcquireLock(ctx context.Context, path string, wait time.Duration) (release func() error, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("acquire update lock: %w", err)
	}
	f, err := openLockFile(path)
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

// Lock takes the update lock of the tree (see AcquireLock) after creating
// the data directory if needed and checking it with CheckDataDir: a data
// directory another user can write to is refused before anything in it is
// opened.
func (t *Tree) Lock(ctx context.Context, wait time.Duration) (release func() error, err error) {
	if err := makePublicDir(t.DataDir()); err != nil {
		return nil, fmt.Errorf("acquire update lock: %w", err)
	}
	if err := t.CheckDataDir(); err != nil {
		return nil, fmt.Errorf("acquire update lock: %w", err)
	}
	return AcquireLock(ctx, t.LockPath(), wait)
}

// CheckDataDir applies the safeperm rule to the root, every directory down
// to the data directory, and the versions and staging directories when
// they exist: teleport-update runs as root what it finds there, so no other
// user may be able to change it.
//
// Outcomes: nil; an error wrapping safeperm.ErrUnsafe naming the first
// failing path and why; a stat error (fs.ErrNotExist for a missing data
// directory).
func (t *Tree) CheckDataDir() error {
	if err := safeperm.CheckDirs(t.Root, t.dataRel()); err != nil {
		return fmt.Errorf("check data directory: %w", err)
	}
	for _, dir := range []string{t.VersionsDir(), t.StagingDir()} {
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = safeperm.Check(dir, fi, true)
		}
		if err != nil {
			return fmt.Errorf("check data directory: %w", err)
		}
	}
	return nil
}

// openLockFile opens or creates path for locking and checks what it got.
func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%w: %s: is a symlink", safeperm.ErrUnsafe, path)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkLockFile(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkLockFile refuses a lock file that fails the safeperm rule or has
// another name elsewhere (a hard link to a file that is not ours).
func checkLockFile(path string, fi os.FileInfo) error {
	if err := safeperm.Check(path, fi, false); err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink != 1 {
		return fmt.Errorf("%w: %s: has %d hard links, want 1", safeperm.ErrUnsafe, path, st.Nlink)
	}
	return nil
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
