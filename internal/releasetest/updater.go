package releasetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

// UpdaterPackage is the import path of teleport-update itself.
const UpdaterPackage = "github.com/gravitational/teleport-update/cmd/teleport-update"

// Updater describes a teleport-update built for a test release: the real
// program, with its test hooks (-tags crashtest: TELEPORT_UPDATE_CRASH_AT
// kills it at a step).
type Updater struct {
	Version string // what `teleport-update version` prints, e.g. "1.5.0"
	// BrokenSetup makes its setup step fail after writing its units, as a
	// broken new updater would.
	BrokenSetup bool
	GOARCH      string // default runtime.GOARCH
}

// Build compiles the updater into dir and returns its path,
// teleport-update-<version>[-broken].
func (u Updater) Build(ctx context.Context, dir string) (string, error) {
	if _, err := download.ParseVersion(u.Version); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if u.GOARCH != "" && !archPattern.MatchString(u.GOARCH) {
		return "", fmt.Errorf("%w: GOARCH %q", ErrInvalid, u.GOARCH)
	}
	arch := u.GOARCH
	if arch == "" {
		arch = runtime.GOARCH
	}
	name, ldflags := "teleport-update-"+u.Version, "-s -w -X main.version="+u.Version
	if u.BrokenSetup {
		name, ldflags = name+"-broken", ldflags+" -X main.failSetup=1"
	}
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "crashtest", "-trimpath", "-ldflags", ldflags, "-o", bin, UpdaterPackage)
	cmd.Dir = moduleDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building teleport-update %s: %w: %s", u.Version, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// ScriptReleaseWithUpdater is ScriptRelease with the updater binary
// updater as bin/teleport-update, as Teleport's releases carry it.
func ScriptReleaseWithUpdater(version string, broken bool, updater []byte) ([]byte, error) {
	return fixture.Tarball(map[string][]byte{
		"bin/teleport":        []byte(Script(version, broken)),
		"bin/tctl":            []byte("#!/bin/sh\necho tctl\n"),
		"bin/teleport-update": updater,
	})
}
