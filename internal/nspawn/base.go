package nspawn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// completeMarker is written last into an unpacked base (next to its rootfs/
// directory): a base without it is a leftover of an interrupted unpack.
const completeMarker = "complete"

// unpackTimeout bounds unpacking the rootfs tarball (1–3 s normally).
const unpackTimeout = 2 * time.Minute

var (
	baseOnce sync.Map // tarball path -> *baseResult
)

type baseResult struct {
	once sync.Once
	dir  string
	err  error
}

// baseDir returns the read-only base directory unpacked from tarball,
// unpacking it at most once per process (and reusing it across processes:
// it lives next to the tarball, keyed by the tarball's identity).
func baseDir(tarball string) (string, error) {
	v, _ := baseOnce.LoadOrStore(tarball, &baseResult{})
	r := v.(*baseResult)
	r.once.Do(func() { r.dir, r.err = unpackBase(tarball) })
	return r.dir, r.err
}

// baseKey identifies one version of the tarball: its stamp, size and mtime.
func baseKey(tarball string) (string, error) {
	fi, err := os.Stat(tarball)
	if err != nil {
		return "", fmt.Errorf("reading rootfs tarball: %w", err)
	}
	stamp, _ := os.ReadFile(tarball + ".stamp") // optional
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s", filepath.Base(tarball), fi.Size(), fi.ModTime().UnixNano(), stamp)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// unpackBase unpacks tarball into <dir of tarball>/base-<key>/rootfs/ unless that
// directory is already complete. Concurrent processes serialize on a lock
// file; the directory appears by rename only once fully unpacked.
func unpackBase(tarball string) (string, error) {
	key, err := baseKey(tarball)
	if err != nil {
		return "", err
	}
	cache := filepath.Dir(tarball)
	final := filepath.Join(cache, "base-"+key)
	if complete(final) {
		return filepath.Join(final, "rootfs"), nil
	}

	lock, err := os.OpenFile(filepath.Join(cache, ".base.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("opening rootfs base lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking rootfs base: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN) //nolint:errcheck // closing releases it too
	if complete(final) {
		return filepath.Join(final, "rootfs"), nil
	}

	// Remove bases of older tarballs and leftovers of interrupted unpacks.
	old, _ := filepath.Glob(filepath.Join(cache, "base-*"))
	for _, d := range old {
		if d != final {
			os.RemoveAll(d) //nolint:errcheck // best effort
		}
	}

	tmp, err := os.MkdirTemp(cache, "base-"+key+".unpacking-")
	if err != nil {
		return "", fmt.Errorf("creating rootfs base dir: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), unpackTimeout)
	defer cancel()
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		os.RemoveAll(tmp) //nolint:errcheck // best effort
		return "", fmt.Errorf("creating rootfs base dir: %w", err)
	}
	cmd := exec.CommandContext(ctx, "tar", "--zstd", "--numeric-owner", "--xattrs", "-xpf", tarball, "-C", rootfs)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp) //nolint:errcheck // best effort
		return "", fmt.Errorf("unpacking rootfs %s: %w: %s", tarball, err, strings.TrimSpace(string(out)))
	}
	if err := os.Chmod(rootfs, 0o755); err != nil {
		os.RemoveAll(tmp) //nolint:errcheck // best effort
		return "", fmt.Errorf("setting rootfs base mode: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o444); err != nil {
		os.RemoveAll(tmp) //nolint:errcheck // best effort
		return "", fmt.Errorf("marking rootfs base complete: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp) //nolint:errcheck // best effort
		return "", fmt.Errorf("publishing rootfs base: %w", err)
	}
	return filepath.Join(final, "rootfs"), nil
}

func complete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, completeMarker))
	return err == nil
}
