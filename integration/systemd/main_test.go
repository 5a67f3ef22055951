package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/nspawn"
)

// harnessErr is why the suite cannot run here (nil when it can).
var harnessErr error

// buildDir holds the binaries the suite builds once per run.
var buildDir string

// moduleRoot is the repository root, relative to this package.
const moduleRoot = "../.."

// prepareTimeout bounds running scripts/systemd-rootfs.sh from TestMain.
const prepareTimeout = 10 * time.Minute

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ci := os.Getenv("CI") == "true"
	harnessErr = nspawn.Available()
	if harnessErr != nil && ci && os.Geteuid() == 0 {
		fmt.Fprintf(os.Stderr, "Real-systemd harness unavailable (%v); running scripts/systemd-rootfs.sh.\n", harnessErr)
		if err := prepareRootfs(); err != nil {
			harnessErr = errors.Join(harnessErr, err)
		} else {
			harnessErr = nspawn.Available()
		}
	}
	if harnessErr != nil {
		if ci {
			fmt.Fprintf(os.Stderr, "\n*** REAL-SYSTEMD SUITE FAILED: it is mandatory in CI (CI=true) but the harness is unavailable: %v ***\n\n", harnessErr)
			return 1
		}
		fmt.Fprintf(os.Stderr, "\n*** REAL-SYSTEMD SUITE SKIPPED: %v (run scripts/test-systemd.sh as root) ***\n\n", harnessErr)
	}
	dir, err := os.MkdirTemp("", "systemd-suite-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "Creating build dir: %v\n", err)
		return 1
	}
	buildDir = dir
	code := m.Run()
	if cdnVal != nil {
		cdnVal.srv.Close()
	}
	os.RemoveAll(dir)
	return code
}

func prepareRootfs() error {
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(moduleRoot, "scripts/systemd-rootfs.sh"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/systemd-rootfs.sh: %w", err)
	}
	return nil
}

// requireHarness skips the test loudly when the harness is unavailable
// (TestMain has already failed the run in CI).
func requireHarness(t *testing.T) {
	t.Helper()
	if harnessErr != nil {
		t.Skipf("REAL-SYSTEMD SUITE SKIPPED: %v", harnessErr)
	}
}

// once builds an artifact at most once per run and remembers the outcome.
type once struct {
	sync.Once
	path string
	err  error
}

func (o *once) get(t *testing.T, build func() (string, error)) string {
	t.Helper()
	o.Do(func() { o.path, o.err = build() })
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.path
}

var cliBinary, incontainerBinary once

// teleportUpdateBinary returns the teleport-update CLI built statically.
func teleportUpdateBinary(t *testing.T) string {
	return cliBinary.get(t, func() (string, error) {
		out := filepath.Join(buildDir, "teleport-update")
		return out, goTool("build", "-o", out, "./cmd/teleport-update")
	})
}

// inContainerTestBinary returns the compiled tests of ./incontainer.
func inContainerTestBinary(t *testing.T) string {
	return incontainerBinary.get(t, func() (string, error) {
		out := filepath.Join(buildDir, "incontainer.test")
		return out, goTool("test", "-c", "-o", out, "./integration/systemd/incontainer")
	})
}

// goTool runs the go command in the module root with CGO disabled, so the
// binaries run inside the container whatever its libc.
func goTool(args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}
