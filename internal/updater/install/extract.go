package install

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gravitational/teleport-update/internal/diskspace"
	"github.com/gravitational/teleport-update/internal/readahead"
)

// Limits bound what Extract accepts. A zero or negative field means the
// corresponding DefaultLimits value.
type Limits struct {
	// MaxFileSize is the largest single file in the archive.
	MaxFileSize int64
	// MaxTotalSize is the largest sum of all file sizes.
	MaxTotalSize int64
	// MaxEntries is the largest number of archive entries.
	MaxEntries int
	// ReserveBytes is the free space that must remain on the install
	// filesystem after extraction.
	ReserveBytes int64
}

// Default extraction limits. A Teleport release unpacks to ~500 MiB with
// a handful of entries; the caps leave ample headroom.
const (
	DefaultMaxFileSize  = 1 << 30 // 1 GiB
	DefaultMaxTotalSize = 4 << 30 // 4 GiB
	DefaultMaxEntries   = 10000   // entries of any type
	DefaultReserveBytes = diskspace.DefaultReserve
)

// DefaultLimits are the limits used in production.
var DefaultLimits = Limits{
	MaxFileSize:  DefaultMaxFileSize,
	MaxTotalSize: DefaultMaxTotalSize,
	MaxEntries:   DefaultMaxEntries,
	ReserveBytes: DefaultReserveBytes,
}

func (l Limits) withDefaults() Limits {
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = DefaultMaxFileSize
	}
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = DefaultMaxTotalSize
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.ReserveBytes <= 0 {
		l.ReserveBytes = DefaultReserveBytes
	}
	return l
}

const (
	// requiredBinary must be an executable regular file in every release.
	requiredBinary = "bin/teleport"
	// maxSymlinkHops bounds symlink resolution like the kernel's ELOOP limit.
	maxSymlinkHops = 40
	// copyBufferSize is the buffer for file data; large enough that the
	// decompressor, not the syscalls, dominates.
	copyBufferSize = 1 << 20
	// readAheadChunk and readAheadChunks size the read-ahead between the
	// decompressor and the tar parser: a few chunks in flight let
	// decompression run on one core while files are written on another.
	readAheadChunk  = 256 << 10
	readAheadChunks = 4
	// writebackChunk is how much of a file is written before its
	// writeback is started.
	writebackChunk = 8 << 20
	// syncQueueLen is how many written files may wait for their fsync.
	syncQueueLen = 64
	// maxPathLen and maxNameLen are Linux's PATH_MAX-1 and NAME_MAX.
	maxPathLen = 4095
	maxNameLen = 255
)

// Extract installs the release tarball (a gzip-compressed tar) as version
// v. It reads the tarball once: the bytes go through SHA-256, which must
// equal sha256hex, and through the decompressor into a fresh private
// staging directory (Unpack). Only after every check passed is the staging
// directory fsynced and renamed to versions/<v> (Commit); the .verified
// marker (sha256hex) is written last.
//
// Outcomes:
//   - nil: versions/<v> is complete and holds this tarball. If it already
//     was (same .verified), Extract does nothing.
//   - ErrWrongTarball: the tarball's SHA-256 is not sha256hex, or
//     versions/<v> is already complete with a different checksum.
//   - ErrUnsafeArchive: an entry was refused (absolute path, "..", a link
//     leaving the version directory, a device/FIFO, a duplicate, a file or
//     total over the limits, too many entries, no executable bin/teleport,
//     or not a gzip-compressed tar at all); the entry is named.
//   - ErrNoSpace: the install filesystem lacks room for the estimated
//     unpacked size plus ReserveBytes, or ran out while writing.
//   - ErrInvalidVersion, ErrInUse (an incomplete versions/<v> is linked).
//
// An incomplete versions/<v> is removed first. On any error nothing is
// left behind but what was there before.
func (t *Tree) Extract(ctx context.Context, tarball, version, sha256hex string, lim Limits) (err error) {
	switch done, err := t.prepareTarget(version, sha256hex); {
	case err != nil:
		return err
	case done:
		return nil
	}
	f, err := os.Open(tarball)
	if err != nil {
		return fmt.Errorf("extract version %s: %w", version, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("extract version %s: %w", version, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("extract version %s: %w: %s is not a regular file", version, ErrUnsafeArchive, tarball)
	}
	estimate, err := unpackedEstimate(f, fi.Size())
	if err != nil {
		return fmt.Errorf("extract version %s: %w", version, err)
	}
	lim = lim.withDefaults()
	staging, err := t.NewStaging()
	if err != nil {
		return fmt.Errorf("extract version %s: %w", version, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(staging)
		}
	}()
	if err := diskspace.Check(staging, min(estimate, lim.MaxTotalSize), lim.ReserveBytes, "to unpack"); err != nil {
		return fmt.Errorf("extract version %s: %w", version, err)
	}
	h := sha256.New()
	r := io.TeeReader(f, h)
	st, xerr := t.Unpack(ctx, staging, r, lim)
	if xerr != nil && ctx.Err() != nil {
		return fmt.Errorf("extract version %s: %w", version, ctx.Err())
	}
	// Hash the rest of a file whose content was refused: a tampered
	// tarball is reported as such even when its content was refused first.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("extract version %s: read %s: %w", version, tarball, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha256hex {
		return errors.Join(fmt.Errorf("extract version %s: %w: %s has SHA-256 %s, expected %s",
			version, ErrWrongTarball, filepath.Base(tarball), got, sha256hex), xerr)
	}
	if xerr != nil {
		return fmt.Errorf("extract version %s from %s: %w", version, filepath.Base(tarball), xerr)
	}
	return t.Commit(st, version, sha256hex)
}

// prepareTarget checks that version may be installed from a tarball with
// SHA-256 sha256hex: done when it already is, ErrWrongTarball when it is
// from another tarball. An incomplete versions/<v> is removed, unless it
// is linked (ErrInUse).
func (t *Tree) prepareTarget(version, sha256hex string) (done bool, err error) {
	if err := ValidateVersion(version); err != nil {
		return false, fmt.Errorf("extract: %w", err)
	}
	if !isSHA256Hex(sha256hex) {
		return false, fmt.Errorf("extract version %s: expected checksum %q is not 64 lowercase hex digits", version, sha256hex)
	}
	switch sum, ok, err := t.Installed(version); {
	case err != nil:
		return false, fmt.Errorf("extract: %w", err)
	case ok && sum == sha256hex:
		return true, nil
	case ok:
		return false, fmt.Errorf("extract version %s: %w: already installed from a tarball with SHA-256 %s, this one is expected to be %s",
			version, ErrWrongTarball, sum, sha256hex)
	}
	if _, err := os.Lstat(t.VersionDir(version)); err != nil {
		return false, nil
	}
	linked, err := t.LinkedVersions()
	if err != nil {
		return false, fmt.Errorf("extract: %w", err)
	}
	if slices.Contains(linked, version) {
		return false, fmt.Errorf("extract version %s: incomplete version directory: %w", version, ErrInUse)
	}
	if err := t.removeVersionDir(version); err != nil {
		return false, fmt.Errorf("extract: remove incomplete version directory: %w", err)
	}
	return false, nil
}

// Staged is a release unpacked into a private staging directory by
// Unpack, not yet trusted: nothing outside the staging directory refers to
// it until Commit.
type Staged struct {
	Dir  string   // the staging directory
	dirs []string // directories created, relative, deepest first
}

// Unpack unpacks the gzip-compressed tar read from r into dir, an empty
// private (0700) staging directory on the install filesystem, with every
// check of Extract (os.Root, no escapes, no devices, the limits of lim, an
// executable bin/teleport, both layouts) and every file fsynced. On
// success it has read r to its end, also past the end of the tar stream,
// so whoever hashes what r delivers has seen every byte. It stops reading at the first refused entry, so
// a hostile stream is cut off there. Free space is checked before each
// file: its size plus lim.ReserveBytes must fit.
//
// The bytes need not be verified yet: the caller removes dir unless their
// hash turns out to be the signed one, and only then calls Commit. Once
// the first file is written the tree reports StepUnpack.
//
// Outcomes: the staged release; ErrUnsafeArchive naming the refused entry;
// ErrNoSpace; r's error (wrapped); the context's error.
func (t *Tree) Unpack(ctx context.Context, dir string, r io.Reader, lim Limits) (*Staged, error) {
	lim = lim.withDefaults()
	br := bufio.NewReaderSize(r, copyBufferSize)
	dirs, err := t.extractTar(ctx, dir, br, lim)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("read release: %w", err)
	}
	return &Staged{Dir: dir, dirs: dirs}, nil
}

// Commit installs the staged release s as version, once the caller proved
// that the tarball it came from has the signed SHA-256 sha256hex: it
// fsyncs the staged tree, renames it to versions/<v> and writes the
// .verified marker (sha256hex) last. When versions/<v> already holds the
// same tarball, s is left for the caller to remove.
//
// Outcomes: nil; those of Extract for the target (ErrWrongTarball,
// ErrInUse, ErrInvalidVersion); a filesystem error. On an error versions/<v>
// is as before (or removed when it was incomplete); s stays for the caller
// to remove.
func (t *Tree) Commit(s *Staged, version, sha256hex string) error {
	switch done, err := t.prepareTarget(version, sha256hex); {
	case err != nil:
		return err
	case done:
		return nil
	}
	if err := makePublicDir(t.VersionsDir()); err != nil {
		return fmt.Errorf("extract version %s: %w", version, err)
	}
	// Make the new tree durable before it gets its final name.
	for _, d := range s.dirs {
		if err := syncDir(filepath.Join(s.Dir, filepath.FromSlash(d))); err != nil {
			return fmt.Errorf("extract version %s: %w", version, err)
		}
	}
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return fmt.Errorf("extract version %s: %w", version, err)
	}
	if err := syncDir(s.Dir); err != nil {
		return fmt.Errorf("extract version %s: %w", version, err)
	}
	dst := t.VersionDir(version)
	if err := renameNoReplace(s.Dir, dst); err != nil {
		return fmt.Errorf("extract version %s: move into place: %w", version, err)
	}
	if err := syncDir(t.VersionsDir()); err != nil {
		_ = t.removeVersionDir(version)
		return fmt.Errorf("extract version %s: %w", version, err)
	}
	t.step(StepRename)
	if err := WriteFileAtomic(filepath.Join(dst, verifiedName), []byte(sha256hex+"\n"), 0o644); err != nil {
		_ = t.removeVersionDir(version)
		return fmt.Errorf("extract version %s: mark complete: %w", version, err)
	}
	return nil
}

// renameNoReplace renames a directory, failing if dst exists (rename(2)
// would silently replace an empty directory).
func renameNoReplace(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// The filesystem does not support the flag; we hold the update
		// lock and removed dst before, so a plain rename is the fallback.
		if _, serr := os.Lstat(dst); serr == nil {
			return &os.LinkError{Op: "rename", Old: src, New: dst, Err: fs.ErrExist}
		}
		return os.Rename(src, dst)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
	}
	return nil
}

// gzipMagic starts every gzip stream (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// unpackedEstimate checks the gzip magic and estimates the unpacked size
// from the ISIZE trailer (uncompressed size modulo 2^32), corrected for
// wrap-around: a tar of binaries is never much smaller than its gzip.
func unpackedEstimate(f *os.File, size int64) (int64, error) {
	var head [2]byte
	if _, err := f.ReadAt(head[:], 0); err != nil || !bytes.Equal(head[:], gzipMagic) {
		return 0, fmt.Errorf("%w: %s is not gzip-compressed (only .tar.gz is accepted)", ErrUnsafeArchive, filepath.Base(f.Name()))
	}
	if size < 18 { // smallest gzip member: 10 header + 8 trailer bytes
		return 0, fmt.Errorf("%w: %s is truncated (%d bytes)", ErrUnsafeArchive, filepath.Base(f.Name()), size)
	}
	var tail [4]byte
	if _, err := f.ReadAt(tail[:], size-4); err != nil {
		return 0, fmt.Errorf("read gzip trailer of %s: %w", f.Name(), err)
	}
	est := int64(binary.LittleEndian.Uint32(tail[:]))
	for est < size-size/8 {
		est += 1 << 32
	}
	return est, nil
}

// entryKind is what an archive path became in the staging directory.
type entryKind uint8

const (
	kindDir entryKind = iota + 1
	kindFile
	kindSymlink
)

// extractor unpacks one tar stream into a staging directory through an
// os.Root, so no path can leave it even if a check below were missed.
type extractor struct {
	ctx      context.Context
	root     *os.Root
	lim      Limits
	dir      string            // the staging directory root opens
	step     func(step string) // reports StepUnpack after the first file
	files    int
	kinds    map[string]entryKind
	layout   layout
	dirs     []string
	symlinks []string
	entries  int
	total    int64
	buf      []byte

	// fsync runs in the background so writeback overlaps decompression.
	syncq   chan *os.File
	syncWG  sync.WaitGroup
	syncMu  sync.Mutex
	syncErr error
}

// extractTar unpacks the gzip-compressed tar in r into dir and returns the
// directories it created (relative, slash-separated), deepest first.
func (t *Tree) extractTar(ctx context.Context, dir string, r io.Reader, lim Limits) (dirs []string, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	gz, err := newGzipReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not a gzip stream: %v", ErrUnsafeArchive, err)
	}
	defer gz.Close()
	zr := readahead.New(gz, readAheadChunk, readAheadChunks)
	defer zr.Close() // runs before gz.Close; r is free for the caller after

	x := &extractor{
		ctx:   ctx,
		root:  root,
		lim:   lim,
		dir:   dir,
		step:  t.step,
		kinds: make(map[string]entryKind),
		buf:   make([]byte, copyBufferSize),
		syncq: make(chan *os.File, syncQueueLen),
	}
	x.syncWG.Add(1)
	go x.syncer()
	defer func() {
		close(x.syncq)
		x.syncWG.Wait()
		if err == nil {
			err = x.syncErr
		}
	}()

	tr := tar.NewReader(zr)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read archive after %d entries: %v", ErrUnsafeArchive, x.entries, err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return nil, diskspace.Label(err)
		}
	}
	if err := x.checkSymlinks(); err != nil {
		return nil, err
	}
	fi, err := root.Lstat(requiredBinary)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%w: archive has no executable regular file %s", ErrUnsafeArchive, requiredBinary)
	}
	slices.Reverse(x.dirs)
	return x.dirs, nil
}

func (x *extractor) syncer() {
	defer x.syncWG.Done()
	for f := range x.syncq {
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			x.syncMu.Lock()
			if x.syncErr == nil {
				x.syncErr = diskspace.Label(fmt.Errorf("fsync %s: %w", f.Name(), err))
			}
			x.syncMu.Unlock()
		}
	}
}

func unsafeEntry(name, format string, args ...any) error {
	return fmt.Errorf("%w: entry %q: %s", ErrUnsafeArchive, name, fmt.Sprintf(format, args...))
}

// cleanEntryName validates an archive path and returns it relative to the
// version directory. A single leading "./" is tolerated; "" means the
// archive root itself.
func cleanEntryName(raw string) (string, error) {
	name := strings.TrimPrefix(raw, "./")
	name = strings.TrimSuffix(name, "/")
	switch {
	case name == "" || name == ".":
		return "", nil
	case strings.HasPrefix(name, "/"):
		return "", unsafeEntry(raw, "absolute path")
	case strings.ContainsRune(name, 0) || strings.ContainsRune(name, '\\'):
		return "", unsafeEntry(raw, "NUL or backslash in path")
	}
	if len(name) > maxPathLen {
		return "", unsafeEntry(raw, "path longer than %d bytes", maxPathLen)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", unsafeEntry(raw, "path contains \"..\"")
		}
		if len(c) > maxNameLen {
			return "", unsafeEntry(raw, "path component longer than %d bytes", maxNameLen)
		}
	}
	if path.Clean(name) != name {
		return "", unsafeEntry(raw, "path is not canonical")
	}
	if name == verifiedName {
		return "", unsafeEntry(raw, "reserved name")
	}
	return name, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	x.entries++
	if x.entries > x.lim.MaxEntries {
		return unsafeEntry(hdr.Name, "more than %d entries", x.lim.MaxEntries)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // pax metadata (git archive writes one), not a file
	}
	name, err := x.placeEntry(hdr)
	if err != nil || name == "" {
		return err
	}
	if k, ok := x.kinds[name]; ok && !(k == kindDir && hdr.Typeflag == tar.TypeDir) {
		return unsafeEntry(hdr.Name, "duplicate entry")
	}
	if err := x.parents(hdr.Name, name); err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if _, ok := x.kinds[name]; ok {
			return nil
		}
		return x.mkdir(name)

	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // TypeRegA is what old tars write
		if hdr.Size < 0 || hdr.Size > x.lim.MaxFileSize {
			return unsafeEntry(hdr.Name, "size %d exceeds the %d byte file limit", hdr.Size, x.lim.MaxFileSize)
		}
		if x.total+hdr.Size > x.lim.MaxTotalSize {
			return unsafeEntry(hdr.Name, "total unpacked size exceeds the %d byte limit", x.lim.MaxTotalSize)
		}
		x.total += hdr.Size
		if err := diskspace.Check(x.dir, hdr.Size, x.lim.ReserveBytes, "to unpack "+name); err != nil {
			return err
		}
		// Normalise permissions: keep "executable or not", never setuid,
		// setgid, sticky or group/world-writable.
		perm := fs.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			perm = 0o755
		}
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if err := x.copyData(f, r, hdr.Size); err != nil {
			_ = f.Close()
			var rerr *readError
			switch {
			case x.ctx.Err() != nil:
				return x.ctx.Err()
			case errors.As(err, &rerr):
				return unsafeEntry(hdr.Name, "truncated or corrupt data: %v", rerr.err)
			}
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := f.Chmod(perm); err != nil { // umask may have cleared bits
			_ = f.Close()
			return fmt.Errorf("chmod %s: %w", name, err)
		}
		x.kinds[name] = kindFile
		x.syncq <- f
		if x.files++; x.files == 1 {
			x.step(StepUnpack)
		}
		return nil

	case tar.TypeSymlink:
		target := hdr.Linkname
		switch {
		case target == "":
			return unsafeEntry(hdr.Name, "empty symlink target")
		case strings.HasPrefix(target, "/"):
			return unsafeEntry(hdr.Name, "symlink to absolute path %q", target)
		case strings.ContainsRune(target, 0):
			return unsafeEntry(hdr.Name, "NUL in symlink target")
		case len(target) > maxPathLen:
			return unsafeEntry(hdr.Name, "symlink target longer than %d bytes", maxPathLen)
		}
		resolved := path.Join(path.Dir(name), target)
		if resolved == ".." || strings.HasPrefix(resolved, "../") {
			return unsafeEntry(hdr.Name, "symlink %q points outside the version directory", target)
		}
		if err := x.root.Symlink(target, name); err != nil {
			return fmt.Errorf("create symlink %s: %w", name, err)
		}
		x.kinds[name] = kindSymlink
		x.symlinks = append(x.symlinks, name)
		return nil

	case tar.TypeLink:
		target, err := cleanEntryName(hdr.Linkname)
		if err == nil && x.layout.top != "" {
			target, _, err = x.layout.place(hdr.Linkname, target)
		}
		if err != nil || target == "" {
			return unsafeEntry(hdr.Name, "hard link to unsafe path %q", hdr.Linkname)
		}
		if x.kinds[target] != kindFile {
			return unsafeEntry(hdr.Name, "hard link to %q, which is not a regular file earlier in the archive", hdr.Linkname)
		}
		if err := x.root.Link(target, name); err != nil {
			return fmt.Errorf("create hard link %s: %w", name, err)
		}
		x.kinds[name] = kindFile
		return nil

	case tar.TypeChar, tar.TypeBlock:
		return unsafeEntry(hdr.Name, "device node")
	case tar.TypeFifo:
		return unsafeEntry(hdr.Name, "FIFO")
	default:
		return unsafeEntry(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
	}
}

// placeEntry validates an entry's name and returns where it goes in the
// version directory, or "" for an entry that is not kept: the archive root,
// or what Teleport's layout skips. A skipped file's size still counts
// against the total limit, so skipped entries cannot make the read
// unbounded.
func (x *extractor) placeEntry(hdr *tar.Header) (string, error) {
	name, err := cleanEntryName(hdr.Name)
	if err != nil {
		return "", err
	}
	if name == "" {
		if hdr.Typeflag == tar.TypeDir {
			return "", nil
		}
		return "", unsafeEntry(hdr.Name, "non-directory entry for the archive root")
	}
	dst, skip, err := x.layout.place(hdr.Name, name)
	switch {
	case err != nil:
		return "", err
	case !x.layout.movable(hdr.Typeflag):
		return "", unsafeEntry(hdr.Name, "symlink in a release in Teleport's layout")
	case skip:
		if hdr.Size < 0 || x.total+hdr.Size > x.lim.MaxTotalSize {
			return "", unsafeEntry(hdr.Name, "total unpacked size exceeds the %d byte limit", x.lim.MaxTotalSize)
		}
		x.total += hdr.Size
		return "", nil
	}
	return dst, nil
}

// parents creates the missing parent directories of name and refuses a
// parent that the archive made something other than a directory, so no
// entry is ever created through a symlink.
func (x *extractor) parents(raw, name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	if k, ok := x.kinds[dir]; ok {
		if k != kindDir {
			return unsafeEntry(raw, "parent %q is not a directory", dir)
		}
		return nil
	}
	if err := x.parents(raw, dir); err != nil {
		return err
	}
	return x.mkdir(dir)
}

func (x *extractor) mkdir(name string) error {
	if err := x.root.Mkdir(name, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", name, err)
	}
	// Whatever the umask, every user must reach the linked binaries.
	if err := x.root.Chmod(name, 0o755); err != nil {
		return fmt.Errorf("chmod directory %s: %w", name, err)
	}
	x.kinds[name] = kindDir
	x.dirs = append(x.dirs, name)
	return nil
}

// checkSymlinks resolves every symlink the archive created, component by
// component as the kernel would, and refuses any that reaches outside the
// version directory at any point (a chain like "a -> ." then "b -> a/.."
// passes a lexical check but escapes).
func (x *extractor) checkSymlinks() error {
	for _, name := range x.symlinks {
		var stack []string
		if d := path.Dir(name); d != "." {
			stack = strings.Split(d, "/")
		}
		target, err := x.root.Readlink(name)
		if err != nil {
			return fmt.Errorf("read symlink %s: %w", name, err)
		}
		pending := strings.Split(target, "/")
		hops := 1
		for len(pending) > 0 {
			c := pending[0]
			pending = pending[1:]
			switch c {
			case "", ".":
				continue
			case "..":
				if len(stack) == 0 {
					return unsafeEntry(name, "symlink %q resolves outside the version directory", target)
				}
				stack = stack[:len(stack)-1]
				continue
			}
			p := strings.Join(append(slices.Clone(stack), c), "/")
			if x.kinds[p] != kindSymlink {
				stack = append(stack, c) // a directory, a file, or nothing
				continue
			}
			hops++
			if hops > maxSymlinkHops {
				return unsafeEntry(name, "symlink %q: too many levels of symbolic links", target)
			}
			next, err := x.root.Readlink(p)
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", p, err)
			}
			pending = append(strings.Split(next, "/"), pending...)
		}
	}
	return nil
}

// readError marks a failure reading the archive (as opposed to writing
// the file): the archive is truncated or corrupt.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

// copyData copies exactly size bytes of file data from r to f, stopping
// when ctx is done. Read failures are returned as *readError. Every
// writebackChunk bytes it asks the kernel to start writing the file out
// (sync_file_range, which does not wait), so the disk works while the rest
// is decompressed and the fsync at the end has little left to do.
func (x *extractor) copyData(f *os.File, r io.Reader, size int64) error {
	var n, flushed int64
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		nr, rerr := r.Read(x.buf)
		if nr > 0 {
			if _, err := f.Write(x.buf[:nr]); err != nil {
				return err
			}
			n += int64(nr)
		}
		if n-flushed >= writebackChunk {
			// Only a hint: fsync later makes the data durable either way.
			_ = unix.SyncFileRange(int(f.Fd()), flushed, n-flushed, unix.SYNC_FILE_RANGE_WRITE)
			flushed = n
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &readError{err: rerr}
		}
	}
	if n != size {
		return &readError{err: io.ErrUnexpectedEOF}
	}
	return nil
}
