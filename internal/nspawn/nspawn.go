// Package nspawn boots throwaway systemd containers with systemd-nspawn for
// tests that need a real systemd (see SYSTEMD-TESTING.md).
//
// Every container is an overlayfs over one read-only base directory, unpacked
// once from the rootfs tarball that scripts/systemd-rootfs.sh caches. Each
// container has its own upper directory, its own cgroup and shares the host
// network namespace, so processes inside reach servers a test starts on the
// host's 127.0.0.1. Containers boot in parallel; Boot registers a cleanup that
// powers the container off and removes everything it created, and the first
// Boot of a process removes what earlier test processes killed before their
// cleanups (go test -timeout, ^C) left behind. Reboot powers a container off
// and boots it again on the same disk (use it instead of `systemctl reboot`
// inside, which just ends systemd-nspawn).
//
// Everything here needs root; call Available first and skip (or fail) the
// test with its error.
package nspawn

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrUnavailable is returned (wrapped, with the reason) by Available when
// containers cannot be booted on this machine.
var ErrUnavailable = errors.New("systemd-nspawn harness unavailable")

// DefaultCacheDir is where scripts/systemd-rootfs.sh caches the rootfs;
// the environment variable TELEPORT_UPDATE_CACHE overrides it for both.
const DefaultCacheDir = "/var/cache/teleport-update"

// tarballName is the cached rootfs file inside the cache directory.
const tarballName = "rootfs-bookworm.tar.zst"

// CacheDir returns the rootfs cache directory: $TELEPORT_UPDATE_CACHE or
// DefaultCacheDir.
func CacheDir() string {
	if d := os.Getenv("TELEPORT_UPDATE_CACHE"); d != "" {
		return d
	}
	return DefaultCacheDir
}

// DefaultTarball returns the path of the cached rootfs tarball.
func DefaultTarball() string {
	return filepath.Join(CacheDir(), tarballName)
}

// Available reports whether containers can be booted: nil when running as
// root, the cached rootfs tarball exists, systemd-nspawn, nsenter and zstd
// are installed, overlayfs is supported and a cgroup v2 hierarchy is mounted.
// Otherwise it returns an error wrapping ErrUnavailable that names what is
// missing and how to get it.
func Available() error {
	return availableWith(DefaultTarball())
}

func availableWith(tarball string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not running as root (uid %d)", ErrUnavailable, os.Geteuid())
	}
	for _, tool := range []string{"systemd-nspawn", "nsenter", "zstd", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not installed (run scripts/systemd-rootfs.sh)", ErrUnavailable, tool)
		}
	}
	if fi, err := os.Stat(tarball); err != nil || fi.Size() == 0 {
		return fmt.Errorf("%w: no cached rootfs at %s (run scripts/systemd-rootfs.sh)", ErrUnavailable, tarball)
	}
	fs, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return fmt.Errorf("%w: reading /proc/filesystems: %v", ErrUnavailable, err)
	}
	if !bytes.Contains(fs, []byte("\toverlay\n")) {
		return fmt.Errorf("%w: kernel has no overlayfs", ErrUnavailable)
	}
	if _, err := cgroup2Root(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// cgroup2Root returns the mount point of the cgroup v2 hierarchy: the
// unified directory on hybrid hosts, /sys/fs/cgroup on pure v2 hosts.
func cgroup2Root() (string, error) {
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", fmt.Errorf("reading mount table: %w", err)
	}
	return findCgroup2(string(mounts))
}

// findCgroup2 picks the cgroup2 mount point out of a /proc/self/mounts text,
// preferring the hybrid layout's /sys/fs/cgroup/unified.
func findCgroup2(mounts string) (string, error) {
	var found []string
	for _, line := range strings.Split(mounts, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup2" {
			found = append(found, f[1])
		}
	}
	for _, want := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		for _, m := range found {
			if m == want {
				return m, nil
			}
		}
	}
	return "", errors.New("no cgroup2 hierarchy mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}
