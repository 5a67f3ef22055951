// Package safeperm holds the one rule for paths that teleport-update,
// running as root, trusts: pinned keys in keys.d, its data directory and
// the installed versions in it.
//
// A trusted path is a real directory or regular file (not a symlink), is
// neither group- nor world-writable, and is owned by root or by the user
// running teleport-update (which lets tests run unprivileged under a
// temporary root). Every directory from the root down to it obeys the same
// rule: whoever can write to a directory above can swap what lies below.
package safeperm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrUnsafe: a path fails the rule; the error names the path and why.
var ErrUnsafe = errors.New("unsafe permissions")

// Reason returns why fi may not be trusted as a directory (wantDir) or a
// regular file by a process whose effective uid is euid, or "" when it may.
func Reason(fi fs.FileInfo, wantDir bool, euid int) string {
	mode := fi.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		return "is a symlink"
	case wantDir && !mode.IsDir():
		return "is not a directory"
	case !wantDir && !mode.IsRegular():
		return "is not a regular file"
	}
	if perm := mode.Perm(); perm&0o022 != 0 {
		return fmt.Sprintf("mode %#o is group/world-writable", perm)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "cannot determine owner"
	}
	if st.Uid != 0 && int(st.Uid) != euid {
		return fmt.Sprintf("owned by uid %d, want 0 or %d", st.Uid, euid)
	}
	return ""
}

// Check applies the rule to fi, the result of Lstat or of Stat on an open
// file at path, for the running process.
//
// Outcomes: nil, or an error wrapping ErrUnsafe that names path and why.
func Check(path string, fi fs.FileInfo, wantDir bool) error {
	if reason := Reason(fi, wantDir, os.Geteuid()); reason != "" {
		return fmt.Errorf("%w: %s: %s", ErrUnsafe, path, reason)
	}
	return nil
}

// CheckDirs applies the rule to root and to every directory from root down
// to root/rel (rel is slash-separated and relative). root itself is
// followed if it is a symlink, since the caller chose it; nothing below it
// may be one.
//
// Outcomes: nil; an error wrapping ErrUnsafe that names the first failing
// path and why; or the Lstat error of a missing or unreadable path (which
// wraps fs.ErrNotExist when part of the path does not exist).
func CheckDirs(root, rel string) error {
	p := filepath.Clean(root)
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if err := Check(p, fi, true); err != nil {
		return err
	}
	for part := range strings.SplitSeq(filepath.ToSlash(filepath.Clean(rel)), "/") {
		switch part {
		case ".", "":
			continue
		case "..":
			return fmt.Errorf("check %s below %s: leaves the root", rel, root)
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if err := Check(p, fi, true); err != nil {
			return err
		}
	}
	return nil
}
