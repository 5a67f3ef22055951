// Package install manages the host side of an update: the
// side-by-side version tree under /var/lib/teleport-update, safe extraction of
// release tarballs, the atomic symlink swap in /usr/local/bin, the systemd
// units, the health check, the update lock and atomic file writes.
//
// Every path is under an injectable root directory: "/" in production,
// t.TempDir() in tests. Paths rendered into systemd units are always the
// paths as systemd on that host sees them (without the root prefix).
package install

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/gravitational/teleport-update/internal/atomicfile"
	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/diskspace"
	"github.com/gravitational/teleport-update/internal/safeperm"
	"github.com/gravitational/teleport-update/internal/version"
)

// Sentinel errors for the decisions callers make. Errors returned by this
// package wrap them with the operation that failed and what was seen.
var (
	// ErrNotOurs: a file in the way (a link target, a unit) was not created
	// by teleport-update and is left alone unless the caller overwrites.
	ErrNotOurs = errors.New("file not managed by teleport-update")
	// ErrUnhealthy: the new version did not pass its health check.
	ErrUnhealthy = errors.New("unhealthy")
	// ErrLocked: another teleport-update holds the update lock.
	ErrLocked = errors.New("update lock is held")
	// ErrUnsafeArchive: the tarball holds an entry that could escape the
	// version directory or is otherwise refused; the entry is named.
	ErrUnsafeArchive = errors.New("unsafe archive")
	// ErrNoSpace: not enough free space to extract; says needed and free.
	// It is diskspace.ErrNoSpace, which a download reports too.
	ErrNoSpace = diskspace.ErrNoSpace
	// ErrInvalidVersion: a version string is not a strict semantic version,
	// so it cannot name a version directory. It is version.ErrInvalid.
	ErrInvalidVersion = version.ErrInvalid
	// ErrWrongTarball: the tarball is not the one the caller named: its
	// SHA-256 is not the expected one, or versions/<v> was already installed
	// from a tarball with another SHA-256. The download side's verdict on a
	// signed checksum is download.ErrChecksumMismatch, a verification error.
	ErrWrongTarball = errors.New("checksum mismatch")
	// ErrInUse: the version is linked from /usr/local/bin and is kept.
	ErrInUse = errors.New("version is linked")
	// ErrVersionNotInstalled: the version directory is missing or incomplete.
	ErrVersionNotInstalled = errors.New("version not installed")
)

// UpdaterRel is the updater binary, usr/local/bin/teleport-update relative
// to the root: next to the links but never one of them. Install copies the
// running binary there and the units run it from there.
const UpdaterRel = binDirRel + "/" + updaterName

// Paths relative to the root. The updater's tree has its own directory
// under /var/lib, next to Teleport's data directory and not inside it:
// Teleport makes /var/lib/teleport mode 0700 when it first runs, and a
// link from /usr/local/bin/tsh into it would then be unusable for every
// user but root. Every directory from the root down to a version's bin/
// is 0755.
const (
	dataDirRel  = "var/lib/teleport-update"
	versionsRel = dataDirRel + "/" + versionsName
	// What the data directory holds.
	versionsName = "versions"
	stagingName  = ".staging"
	stateName    = "update.yaml"
	lockName     = "update.lock"
	// unitBackupName keeps an admin's unit files that install replaced.
	unitBackupName = "unit-backup"
	// updaterBackupName keeps the updater that a self-update replaces,
	// until the new one has set itself up.
	updaterBackupName = "updater-backup"
	// legacyDataDirRel is where earlier builds kept the same tree
	// (versions/, .staging/, update.yaml, update.lock): Teleport's own data
	// directory. It is only read to move an old install over (see Legacy)
	// and to recognise links into it.
	legacyDataDirRel = "var/lib/teleport"
	binDirRel        = "usr/local/bin"
	unitDirRel       = "etc/systemd/system"
	systemdRunRel    = "run/systemd/system"

	// hostKeyName is the host's census signing key in the data dir.
	hostKeyName = "host.key"

	// verifiedName marks a version directory complete; it holds the
	// tarball's SHA-256 as lowercase hex and is written last.
	verifiedName = ".verified"
	// tmpMarker is part of every temporary name this package creates next
	// to a final path, so CleanLeftovers can recognise them.
	tmpMarker = atomicfile.TempMarker
)

// Tree is the install tree under one root directory.
type Tree struct {
	// Root is the filesystem root ("/" in production).
	Root string
	// legacy makes the data directory the one earlier builds used (see
	// Legacy).
	legacy bool
	// AfterStep, when set, is called after each durable step inside
	// Unpack (StepUnpack), Extract and Commit (StepRename) and Link (StepLinkBinary, once per binary).
	// Tests use it to kill the process between steps; production leaves it
	// nil.
	AfterStep func(step string)
}

// Steps the tree reports to AfterStep. The updater lists them with its
// own steps, so the crash tests kill the process at each of them.
const (
	// StepUnpack: the first file of a release was unpacked into its
	// private staging directory; the tarball's hash is not known yet.
	StepUnpack = "unpack"
	// StepRename: a verified version directory was renamed into versions/.
	StepRename = "rename"
	// StepLinkBinary: one binary's link was swapped; the others may not
	// be yet.
	StepLinkBinary = "link-binary"
)

func (t *Tree) step(name string) {
	if t.AfterStep != nil {
		t.AfterStep(name)
	}
}

// New returns the install tree under root.
func New(root string) *Tree {
	return &Tree{Root: root}
}

func (t *Tree) path(rel string) string { return filepath.Join(t.Root, rel) }

// dataRel is the data directory relative to the root.
func (t *Tree) dataRel() string {
	if t.legacy {
		return legacyDataDirRel
	}
	return dataDirRel
}

// DataDir is <root>/var/lib/teleport-update.
func (t *Tree) DataDir() string { return t.path(t.dataRel()) }

// VersionsDir is <root>/var/lib/teleport-update/versions.
func (t *Tree) VersionsDir() string { return filepath.Join(t.DataDir(), versionsName) }

// VersionDir is <root>/var/lib/teleport-update/versions/<v>. v is not validated
// here; every method that touches the directory validates it.
func (t *Tree) VersionDir(v string) string { return filepath.Join(t.VersionsDir(), v) }

// StagingDir is <root>/var/lib/teleport-update/.staging, the parent of every
// staging directory; it lives on the same filesystem as the versions.
func (t *Tree) StagingDir() string { return filepath.Join(t.DataDir(), stagingName) }

// StatePath is <root>/var/lib/teleport-update/update.yaml.
func (t *Tree) StatePath() string { return filepath.Join(t.DataDir(), stateName) }

// LockPath is <root>/var/lib/teleport-update/update.lock.
func (t *Tree) LockPath() string { return filepath.Join(t.DataDir(), lockName) }

// HostKeyPath is the host's census signing key, next to update.yaml
// (package census, LoadOrCreateHostKey).
func (t *Tree) HostKeyPath() string { return filepath.Join(t.DataDir(), hostKeyName) }

// BinDir is <root>/usr/local/bin, where the links live.
func (t *Tree) BinDir() string { return t.path(binDirRel) }

// UpdaterPath is <root>/usr/local/bin/teleport-update (UpdaterRel).
func (t *Tree) UpdaterPath() string { return t.path(UpdaterRel) }

// UpdaterBackupDir is <root>/var/lib/teleport-update/updater-backup, where
// a self-update keeps the updater it replaces until the new one has set
// itself up.
func (t *Tree) UpdaterBackupDir() string { return filepath.Join(t.DataDir(), updaterBackupName) }

// UpdaterBackupPath is the kept updater in UpdaterBackupDir.
func (t *Tree) UpdaterBackupPath() string {
	return filepath.Join(t.UpdaterBackupDir(), updaterName)
}

// ReleaseUpdater is the teleport-update a release carries, in version v's
// bin/ (it is extracted with the rest of bin/ but never linked).
func (t *Tree) ReleaseUpdater(v string) string {
	return filepath.Join(t.VersionDir(v), "bin", updaterName)
}

// UnitDir is <root>/etc/systemd/system.
func (t *Tree) UnitDir() string { return t.path(unitDirRel) }

// HasSystemd reports whether <root>/run/systemd/system exists, the test
// systemd itself documents (sd_booted(3)).
func (t *Tree) HasSystemd() bool {
	fi, err := os.Stat(t.path(systemdRunRel))
	return err == nil && fi.IsDir()
}

// makePublicDir creates dir and any missing parent with mode 0755
// whatever the umask: every user must be able to reach the linked
// binaries under it. An existing directory keeps its mode (CheckDataDir
// refuses one that others may write to).
func makePublicDir(dir string) error {
	var created []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			break
		}
		created = append(created, p)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range created {
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// ValidateVersion checks that v can name a version directory: a strict
// semantic version without a leading "v" (see version.Parse). Errors wrap
// ErrInvalidVersion.
func ValidateVersion(v string) error {
	_, err := version.Parse(v)
	return err
}

// NewStaging creates a fresh private directory (mode 0700) under
// StagingDir. The caller removes it; CleanLeftovers removes any left by a
// killed run.
func (t *Tree) NewStaging() (string, error) {
	// The data directory is public (0755) when this creates it: versions/
	// beside the staging area must be reachable by every user.
	if err := makePublicDir(t.DataDir()); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	if err := os.MkdirAll(t.StagingDir(), 0o700); err != nil {
		return "", fmt.Errorf("create staging area: %w", err)
	}
	dir, err := os.MkdirTemp(t.StagingDir(), "stage-")
	if err != nil {
		return "", fmt.Errorf("create staging directory: %w", err)
	}
	return dir, nil
}

// Installed reports whether version v is completely installed and returns
// the SHA-256 recorded in its .verified marker. A missing or incomplete
// version directory is ok=false with a nil error. The version directory
// and the marker must pass the safeperm rule (owned by root or the running
// user, not writable by others, no symlinks); a version directory someone
// else made is refused with an error wrapping safeperm.ErrUnsafe, never
// taken as installed.
func (t *Tree) Installed(v string) (sha256hex string, ok bool, err error) {
	if err := ValidateVersion(v); err != nil {
		return "", false, err
	}
	b, err := t.readVerified(v)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, capread.ErrTooLarge) {
		return "", false, nil // absent, or too long to be one of ours
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s marker of version %s: %w", verifiedName, v, err)
	}
	sum := strings.TrimSpace(string(b))
	if !isSHA256Hex(sum) {
		// A marker that does not hold a checksum was not written by us:
		// treat the directory as incomplete.
		return "", false, nil
	}
	return sum, true, nil
}

// maxVerifiedSize bounds the .verified marker: a checksum and a newline.
const maxVerifiedSize = 128

// readVerified checks version v's directory and reads its .verified marker
// without following a symlink, after checking the opened file.
func (t *Tree) readVerified(v string) ([]byte, error) {
	dir := t.VersionDir(v)
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if err := safeperm.Check(dir, fi, true); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, verifiedName)
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%w: %s: is a symlink", safeperm.ErrUnsafe, p)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := safeperm.Check(p, fi, false); err != nil {
		return nil, err
	}
	return capread.All(f, maxVerifiedSize)
}

// Versions lists the completely installed versions (those with a .verified
// marker), oldest first by semantic version.
func (t *Tree) Versions() ([]string, error) {
	all, err := t.versionDirs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range all {
		if _, ok, err := t.Installed(v); err != nil {
			return nil, err
		} else if ok {
			out = append(out, v)
		}
	}
	return out, nil
}

// versionDirs lists every entry of the versions directory that is a valid
// version name, complete or not, sorted by semantic version.
func (t *Tree) versionDirs() ([]string, error) {
	entries, err := os.ReadDir(t.VersionsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	var out []string
	for _, e := range entries {
		if ValidateVersion(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sortVersions(out)
	return out, nil
}

func sortVersions(vs []string) {
	slices.SortFunc(vs, func(a, b string) int {
		va, errA := version.Parse(a)
		vb, errB := version.Parse(b)
		if errA != nil || errB != nil {
			return strings.Compare(a, b)
		}
		return va.Compare(vb)
	})
}

// RemoveVersion deletes version v. It refuses (ErrInUse) when any link in
// /usr/local/bin points into it. The directory is first renamed into the
// staging area, so a crash never leaves a half-deleted directory that still
// looks complete. Removing a version that is not there is not an error.
func (t *Tree) RemoveVersion(v string) error {
	if err := ValidateVersion(v); err != nil {
		return err
	}
	linked, err := t.LinkedVersions()
	if err != nil {
		return err
	}
	if slices.Contains(linked, v) {
		return fmt.Errorf("remove version %s: %w from %s", v, ErrInUse, t.BinDir())
	}
	return t.removeVersionDir(v)
}

func (t *Tree) removeVersionDir(v string) error {
	dir := t.VersionDir(v)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(t.StagingDir(), 0o700); err != nil {
		return fmt.Errorf("remove version %s: create staging area: %w", v, err)
	}
	trash := filepath.Join(t.StagingDir(), "remove-"+v+"-"+randomSuffix())
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("remove version %s: move aside: %w", v, err)
	}
	if err := syncDir(t.VersionsDir()); err != nil {
		return fmt.Errorf("remove version %s: %w", v, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove version %s: %w", v, err)
	}
	return nil
}

// ErrDamaged: a version directory marked complete no longer holds what
// every release has (an executable regular file bin/teleport); something
// changed it after it was installed.
var ErrDamaged = errors.New("version directory is damaged")

// Intact reports whether version v is completely installed (see Installed)
// and still holds an executable regular file bin/teleport.
//
// Outcomes: nil; ErrVersionNotInstalled when versions/<v> is missing or has no
// valid .verified marker; ErrDamaged, naming what is wrong, when it is
// marked complete but bin/teleport is missing or not an executable
// regular file; ErrInvalidVersion.
func (t *Tree) Intact(v string) error {
	_, ok, err := t.Installed(v)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("version %s: %w", v, ErrVersionNotInstalled)
	}
	bin := filepath.Join(t.VersionDir(v), filepath.FromSlash(requiredBinary))
	fi, err := os.Lstat(bin)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("version %s: %w: %s is missing", v, ErrDamaged, bin)
	case err != nil:
		return fmt.Errorf("version %s: %w: %w", v, ErrDamaged, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("version %s: %w: %s is not a regular file (%s)", v, ErrDamaged, bin, fi.Mode().Type())
	case fi.Mode()&0o111 == 0:
		return fmt.Errorf("version %s: %w: %s is not executable (mode %s)", v, ErrDamaged, bin, fi.Mode().Perm())
	}
	return nil
}

// RemoveDamaged removes versions/<v> when it exists but is not Intact
// (incomplete or damaged), even when links point into it: they are broken
// anyway, and the caller is about to fetch the version again. An intact or
// absent version is left alone. It reports whether it removed anything.
func (t *Tree) RemoveDamaged(v string) (removed bool, err error) {
	err = t.Intact(v)
	if err == nil || !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrVersionNotInstalled) {
		return false, err
	}
	if _, err := os.Lstat(t.VersionDir(v)); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err := t.removeVersionDir(v); err != nil {
		return false, err
	}
	return true, nil
}

// Prune deletes every version directory (complete or not) except those in
// keep and those linked from /usr/local/bin, and returns the removed
// versions. Empty strings in keep are ignored.
func (t *Tree) Prune(keep ...string) (removed []string, err error) {
	all, err := t.versionDirs()
	if err != nil {
		return nil, err
	}
	linked, err := t.LinkedVersions()
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		if slices.Contains(keep, v) || slices.Contains(linked, v) {
			continue
		}
		if err := t.removeVersionDir(v); err != nil {
			return removed, fmt.Errorf("prune: %w", err)
		}
		removed = append(removed, v)
	}
	return removed, nil
}

// CleanLeftovers removes what a killed run can leave behind: everything in
// the staging area, version directories without a valid .verified marker
// (never one that is linked), and temporary files of atomic writes and link
// swaps. It returns the removed paths.
func (t *Tree) CleanLeftovers() (removed []string, err error) {
	entries, err := os.ReadDir(t.StagingDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("clean leftovers: list staging: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(t.StagingDir(), e.Name())
		if err := os.RemoveAll(p); err != nil {
			return removed, fmt.Errorf("clean leftovers: %w", err)
		}
		removed = append(removed, p)
	}

	all, err := t.versionDirs()
	if err != nil {
		return removed, fmt.Errorf("clean leftovers: %w", err)
	}
	linked, err := t.LinkedVersions()
	if err != nil {
		return removed, fmt.Errorf("clean leftovers: %w", err)
	}
	for _, v := range all {
		if _, ok, err := t.Installed(v); err != nil {
			return removed, fmt.Errorf("clean leftovers: %w", err)
		} else if ok || slices.Contains(linked, v) {
			continue
		}
		if err := t.removeVersionDir(v); err != nil {
			return removed, fmt.Errorf("clean leftovers: %w", err)
		}
		removed = append(removed, t.VersionDir(v))
	}

	links, err := t.linkLayout()
	if err != nil {
		return removed, fmt.Errorf("clean leftovers: %w", err)
	}
	for _, dir := range []string{t.DataDir(), links.dir, t.UnitDir()} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("clean leftovers: list %s: %w", dir, err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") || !strings.Contains(e.Name(), tmpMarker) || e.IsDir() {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, fmt.Errorf("clean leftovers: %w", err)
			}
			removed = append(removed, p)
		}
	}
	return removed, nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
