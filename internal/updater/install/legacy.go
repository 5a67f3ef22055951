package install

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/gravitational/teleport-update/internal/safeperm"
)

// Earlier builds kept the updater's tree in Teleport's data directory,
// /var/lib/teleport (legacyDataDirRel). The functions below let the
// updater move such an install over to its own directory: copy each
// complete version (CopyVersionFrom), then, once links and units name the
// new tree, remove the old one (RemoveLegacy). Each is idempotent, so a
// move killed at any point is finished by the next run.

// Legacy returns the tree earlier builds kept under the same root, in
// Teleport's data directory. Only its data directory, versions, staging,
// update.yaml and update.lock paths differ; it is only to be read from and
// removed, never linked to.
func (t *Tree) Legacy() *Tree {
	return &Tree{Root: t.Root, legacy: true}
}

// HasLegacy reports whether an earlier build's install is under
// Teleport's data directory: its update.yaml or its versions directory.
// Before anything there is read, the data directory, every directory above
// it, and the versions and staging directories must pass the safeperm
// rule, as the updater's own directory must: the old tree is never trusted
// more than the new one.
//
// Outcomes: false, nil when there is nothing to move; true, nil; an error
// wrapping safeperm.ErrUnsafe naming what is wrong.
func (t *Tree) HasLegacy() (bool, error) {
	old := t.Legacy()
	found := false
	for _, p := range []string{old.StatePath(), old.VersionsDir()} {
		if _, err := os.Lstat(p); err == nil {
			found = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("look for an earlier install: %w", err)
		}
	}
	if !found {
		return false, nil
	}
	if err := old.CheckDataDir(); err != nil {
		return false, fmt.Errorf("earlier install in %s: %w", old.DataDir(), err)
	}
	return true, nil
}

// LegacyVersions lists the complete versions of the earlier build's tree,
// oldest first; each passed the checks of Installed.
func (t *Tree) LegacyVersions() ([]string, error) {
	return t.Legacy().Versions()
}

// CopyVersionFrom copies version v, complete in the tree src, into this
// tree: into a private staging directory first, files hard linked when
// both trees are on one filesystem and copied and synced otherwise, then
// renamed into versions/, and marked complete last with the same checksum.
// The source is left as it is, so a running binary never loses its file.
// Every directory and file copied must pass the safeperm rule.
//
// A version already complete here is left alone. Outcomes: nil;
// ErrVersionNotInstalled when src has no complete v; an error wrapping
// safeperm.ErrUnsafe; an I/O error.
func (t *Tree) CopyVersionFrom(src *Tree, v string) (err error) {
	if _, ok, err := t.Installed(v); err != nil || ok {
		return err
	}
	sum, ok, err := src.Installed(v)
	if err != nil {
		return fmt.Errorf("copy version %s: %w", v, err)
	}
	if !ok {
		return fmt.Errorf("copy version %s: %w in %s", v, ErrVersionNotInstalled, src.VersionsDir())
	}
	if err := makePublicDir(t.VersionsDir()); err != nil {
		return fmt.Errorf("copy version %s: %w", v, err)
	}
	staging, err := t.NewStaging()
	if err != nil {
		return fmt.Errorf("copy version %s: %w", v, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(staging)
		}
	}()
	if err := copyTree(src.VersionDir(v), staging); err != nil {
		return fmt.Errorf("copy version %s: %w", v, err)
	}
	if err := renameNoReplace(staging, t.VersionDir(v)); err != nil {
		return fmt.Errorf("copy version %s: move into place: %w", v, err)
	}
	if err := syncDir(t.VersionsDir()); err != nil {
		_ = t.removeVersionDir(v)
		return fmt.Errorf("copy version %s: %w", v, err)
	}
	if err := WriteFileAtomic(filepath.Join(t.VersionDir(v), verifiedName), []byte(sum+"\n"), 0o644); err != nil {
		_ = t.removeVersionDir(v)
		return fmt.Errorf("copy version %s: mark complete: %w", v, err)
	}
	return nil
}

// copyTree copies the content of directory src into the existing
// directory dst (made 0755), except the .verified marker, and syncs every
// directory it wrote.
func copyTree(src, dst string) error {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == verifiedName {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return copySymlink(p, to)
		case rel == ".":
			if err := safeperm.Check(p, fi, true); err != nil {
				return err
			}
			return os.Chmod(dst, 0o755)
		case fi.IsDir():
			if err := safeperm.Check(p, fi, true); err != nil {
				return err
			}
			if err := os.Mkdir(to, 0o755); err != nil {
				return err
			}
			return os.Chmod(to, 0o755) // as Extract makes them, whatever the umask
		}
		if err := safeperm.Check(p, fi, false); err != nil {
			return err
		}
		return linkOrCopy(p, to, fi.Mode().Perm())
	})
	if err != nil {
		return err
	}
	return filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return syncDir(p)
	})
}

// copySymlink recreates the symlink at p as to. Extract only ever made
// symlinks that stay inside their version directory, and the copy keeps
// the same relative target.
func copySymlink(p, to string) error {
	target, err := os.Readlink(p)
	if err != nil {
		return err
	}
	if filepath.IsAbs(target) {
		return fmt.Errorf("%w: %s: symlink to the absolute path %q", safeperm.ErrUnsafe, p, target)
	}
	return os.Symlink(target, to)
}

// linkOrCopy makes to a hard link of the regular file p, or, when they are
// on different filesystems (or hard links are refused), a synced copy
// with mode perm.
func linkOrCopy(p, to string, perm fs.FileMode) error {
	if err := os.Link(p, to); err == nil {
		return nil
	}
	in, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(perm); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// RemoveLegacyVersion removes version directory v of the earlier build's
// tree, complete or not, whatever links say: the caller moved the links to
// this tree first. A version directory that is not there is not an error.
func (t *Tree) RemoveLegacyVersion(v string) error {
	if err := ValidateVersion(v); err != nil {
		return err
	}
	return t.Legacy().removeVersionDir(v)
}

// LegacyVersionDirs lists every version directory of the earlier build's
// tree, complete or not.
func (t *Tree) LegacyVersionDirs() ([]string, error) {
	return t.Legacy().versionDirs()
}

// RemoveLegacy removes what is left of the earlier build's tree once its
// versions are gone: its staging area, its empty versions directory and
// update.yaml, last (its absence says the move is finished). Teleport's
// data directory itself and everything else in it stay. update.lock is
// removed too; the caller may still hold it.
func (t *Tree) RemoveLegacy() (removed []string, err error) {
	old := t.Legacy()
	if err := os.RemoveAll(old.StagingDir()); err != nil {
		return nil, fmt.Errorf("remove earlier install: %w", err)
	}
	if err := os.Remove(old.VersionsDir()); err == nil {
		removed = append(removed, old.VersionsDir())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return removed, fmt.Errorf("remove earlier install: %w", err)
	}
	for _, p := range []string{old.StatePath(), old.LockPath()} {
		if err := os.Remove(p); err == nil {
			removed = append(removed, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("remove earlier install: %w", err)
		}
	}
	if err := syncDir(old.DataDir()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return removed, fmt.Errorf("remove earlier install: %w", err)
	}
	return removed, nil
}
