// Package releasetest builds fake Teleport releases for tests and demos: the
// test agent (internal/testagent) compiled for a version and a behaviour,
// packed as a release tarball named and laid out like a real one
// (teleport-v<ver>-linux-<arch>-bin.tar.gz with bin/teleport and bin/tctl).
// Signing is left to package release.
package releasetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// AgentPackage is the import path of the test agent program.
const AgentPackage = "github.com/gravitational/teleport-update/internal/testagent"

// Modes of the test agent's "start" command.
const (
	ModeOK    = "ok"    // runs until SIGTERM
	ModeExit  = "exit"  // exits 1 at once
	ModeCrash = "crash" // exits 1 after CrashAfter (default 5s)
)

// DefaultCrashAfter is how long a ModeCrash agent runs before it crashes.
const DefaultCrashAfter = 5 * time.Second

// ErrInvalid is returned (wrapped) for a bad version, mode or architecture.
var ErrInvalid = errors.New("invalid test release")

// versionPattern accepts semver-like strings and nothing that could break
// out of an -ldflags -X value or a file name.
var versionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$`)

var archPattern = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// Agent describes one test release.
type Agent struct {
	Version    string        // semver without a leading "v", e.g. "1.2.3"
	Mode       string        // ModeOK, ModeExit or ModeCrash
	CrashAfter time.Duration // for ModeCrash; default DefaultCrashAfter
	GOARCH     string        // default runtime.GOARCH (GOOS is always linux)
}

// TarballName returns the release file name for version and arch:
// teleport-v<version>-linux-<arch>-bin.tar.gz.
func TarballName(version, arch string) string {
	return fmt.Sprintf("teleport-v%s-linux-%s-bin.tar.gz", version, arch)
}

// BinaryName returns the name of the bare agent binary Build leaves next to
// the tarball: teleport-<version>-<mode>.
func BinaryName(version, mode string) string {
	return fmt.Sprintf("teleport-%s-%s", version, mode)
}

// BuildAgent builds a release tarball of the test agent for version and mode
// into dir and returns its path; it fails the test on error.
func BuildAgent(t testing.TB, dir, version, mode string) (tarballPath string) {
	t.Helper()
	p, err := Build(t.Context(), dir, version, mode)
	if err != nil {
		t.Fatalf("Building test release %s (%s): %v", version, mode, err)
	}
	return p
}

// Build builds a release tarball of the test agent for version and mode into
// dir and returns its path. It runs "go build", so it needs the Go toolchain
// and this module's source tree.
func Build(ctx context.Context, dir, version, mode string) (string, error) {
	return Agent{Version: version, Mode: mode}.Build(ctx, dir)
}

// Build compiles the agent and packs it into dir/TarballName(...): bin/teleport
// and bin/tctl (the same program), mode 0755, with fixed timestamps so equal
// inputs give equal tarballs. The bare binary is left in dir too, named
// BinaryName(version, mode).
func (a Agent) Build(ctx context.Context, dir string) (string, error) {
	if err := a.validate(); err != nil {
		return "", err
	}
	arch := a.GOARCH
	if arch == "" {
		arch = runtime.GOARCH
	}
	crash := a.CrashAfter
	if crash == 0 {
		crash = DefaultCrashAfter
	}
	bin := filepath.Join(dir, BinaryName(a.Version, a.Mode))
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.mode=%s -X main.crashAfter=%s", a.Version, a.Mode, crash)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, AgentPackage)
	cmd.Dir = moduleDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building test agent %s: %w: %s", a.Version, err, strings.TrimSpace(string(out)))
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("reading built test agent: %w", err)
	}
	tarball := filepath.Join(dir, TarballName(a.Version, arch))
	if err := writeTarball(tarball, map[string][]byte{"bin/teleport": exe, "bin/tctl": exe}); err != nil {
		return "", fmt.Errorf("packing test release %s: %w", a.Version, err)
	}
	return tarball, nil
}

func (a Agent) validate() error {
	if !versionPattern.MatchString(a.Version) || strings.HasPrefix(a.Version, "v") {
		return fmt.Errorf("%w: version %q (want semver without a leading v)", ErrInvalid, a.Version)
	}
	switch a.Mode {
	case ModeOK, ModeExit, ModeCrash:
	default:
		return fmt.Errorf("%w: mode %q (want %s, %s or %s)", ErrInvalid, a.Mode, ModeOK, ModeExit, ModeCrash)
	}
	if a.CrashAfter < 0 {
		return fmt.Errorf("%w: negative CrashAfter %v", ErrInvalid, a.CrashAfter)
	}
	if a.GOARCH != "" && !archPattern.MatchString(a.GOARCH) {
		return fmt.Errorf("%w: GOARCH %q", ErrInvalid, a.GOARCH)
	}
	return nil
}

// tarballTime is the modification time of every entry: fixed, so builds of
// the same binary give byte-identical tarballs.
var tarballTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// writeTarball writes a .tar.gz with a bin/ directory and the given files
// (mode 0755), in sorted order, atomically (temp file + rename).
func writeTarball(path string, files map[string][]byte) error {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755, ModTime: tarballTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		data := files[n]
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o755, Size: int64(len(data)), ModTime: tarballTime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, bytes.NewReader(data)); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// moduleDir returns the root of this module's source tree (where go.mod
// is), found from this file's location, or "" (the current directory) when
// the source is not where it was compiled (e.g. a -trimpath build).
func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return ""
	}
	return dir
}
