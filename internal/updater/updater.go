// This file holds the Updater type: what an operation needs from the host
// (install tree, HTTP client, systemd, keys, clock, hooks) and the small
// helpers that reach it.

package updater

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// Unit names the updater manages.
const (
	AgentUnit        = install.AgentUnit
	UpdaterUnit      = install.UpdaterUnit
	UpdaterTimerUnit = install.UpdaterTimerUnit
)

// UpdaterBinPath is where install puts the teleport-update binary, relative
// to the root; the units run it from there.
const UpdaterBinPath = "usr/local/bin/teleport-update"

// SystemdFunc connects to the host's systemd. It returns (nil, nil) when
// the host has no systemd, in which case unit operations are skipped.
type SystemdFunc func(ctx context.Context) (install.Systemd, error)

// Updater performs the operations of the CLI on one host.
type Updater struct {
	Tree *install.Tree
	HTTP *download.Client
	Log  *slog.Logger
	// EmbeddedKeys are the compiled-in pinned keys (package keys).
	EmbeddedKeys fs.FS
	// Systemd connects to systemd; nil means the host never has one.
	Systemd SystemdFunc
	// Procs reads the agent's processes during a handover; nil means /proc.
	Procs install.Processes
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx is done; nil means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a random delay in [0, max); nil means uniform.
	Jitter func(max time.Duration) time.Duration
	// OS and Arch select the artifact; empty means this machine's.
	OS, Arch string
	// MaxArtifactSize caps the tarball download.
	MaxArtifactSize int64
	Limits          install.Limits
	Health          install.HealthOptions
	// Units configures the rendered units (Version is filled in).
	Units install.UnitOptions
	// LockWait is how long to wait for update.lock; negative waits forever.
	LockWait time.Duration
	// Progress receives download progress; may be nil.
	Progress func(done, total int64)
	// AfterStep, when set, is called at each Step of an update, including
	// the install tree's own (Tree.AfterStep is not used). Tests use it to
	// kill the process at every step.
	AfterStep func(Step)
	// run logs the steps of the run under way (see runlog.go).
	run *runLog
	// AgentHeld, when set, is called when a switch leaves the agent
	// stopped (see mayStartAgent), with the reason (HeldNoConfig,
	// HeldNotEnabled).
	AgentHeld func(reason string)
	// Reporter, when set, receives the census report of install and
	// update runs (see report.go).
	Reporter Reporter
	// SELinux labels each installed version's binaries on hosts where
	// SELinux is enforcing; the zero value probes the host.
	SELinux install.SELinux
	// SelfVersion is this teleport-update's version; a self-update
	// replaces the updater in place only with a newer one.
	SelfVersion string
	// InstallSelf, when set, puts this binary in place as the updater the
	// units run (UpdaterBinPath); install calls it once the agent is in.
	InstallSelf func() error
	// SetupCheck, when set, is a last check of Setup before it commits;
	// tests make it fail to stand for a broken new updater.
	SetupCheck func() error
}

func (u *Updater) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

func (u *Updater) sleep(ctx context.Context, d time.Duration) error {
	if u.Sleep != nil {
		return u.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (u *Updater) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	if u.Jitter != nil {
		return u.Jitter(max)
	}
	return rand.N(max)
}

// artifact names build fl of Teleport v for this host's OS and arch.
func (u *Updater) artifact(v *semver.Version, fl download.Flavour) download.Artifact {
	a := download.Artifact{Product: download.ProductTeleport, Version: v, OS: u.OS, Arch: u.Arch, Edition: fl.Edition(), FIPS: fl.FIPS}
	if a.OS == "" {
		a.OS = runtime.GOOS
	}
	if a.Arch == "" {
		a.Arch = runtime.GOARCH
	}
	return a
}

// systemd connects to systemd; (nil, nil) on a host without it.
func (u *Updater) systemd(ctx context.Context) (install.Systemd, error) {
	if u.Systemd == nil || !u.Tree.HasSystemd() {
		return nil, nil
	}
	sd, err := u.Systemd(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to systemd: %w", err)
	}
	return sd, nil
}

// keys loads the pinned key set, logging keys it had to ignore.
func (u *Updater) keys() (*verify.KeySet, error) {
	ks, warnings, err := verify.LoadKeySet(u.Tree.Root, u.EmbeddedKeys)
	for _, w := range warnings {
		u.Log.Warn("Ignoring a trusted key.", "reason", w)
	}
	if err != nil {
		return nil, fmt.Errorf("loading pinned keys: %w", err)
	}
	return ks, nil
}

func (u *Updater) logErr(err error, op string) {
	if err != nil {
		u.Log.Warn("Operation failed.", "op", op, "error", err)
	}
}

// ReadConfig returns update.yaml as it is now, without taking update.lock
// (see state.go for why a reader still sees a whole state). exists is false
// when the host has no update.yaml.
//
// On a host an earlier build installed and no run has moved over yet, it
// is the old tree's update.yaml, read after the same checks as the new one
// (see install.Tree.HasLegacy).
func (u *Updater) ReadConfig() (cfg *Config, exists bool, err error) {
	cfg, exists, err = LoadConfig(u.Tree.StatePath())
	if err != nil || exists {
		return cfg, exists, err
	}
	if found, err := u.Tree.HasLegacy(); err != nil || !found {
		return cfg, false, err
	}
	return LoadConfig(u.Tree.Legacy().StatePath())
}

// stateExists reports whether the host has an update.yaml, in the new
// tree or in an earlier build's.
func (u *Updater) stateExists() bool {
	for _, p := range []string{u.Tree.StatePath(), u.Tree.Legacy().StatePath()} {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	return false
}

// label gives version v's binaries the SELinux type systemd may execute,
// when SELinux is enforcing. A version that cannot be labelled is removed
// again, so that the next run installs and labels it anew instead of
// switching to binaries systemd would refuse to run.
func (u *Updater) label(ctx context.Context, v string) error {
	labelled, err := u.SELinux.Label(ctx, u.Tree.Root, v)
	if err != nil {
		u.logErr(u.Tree.RemoveVersion(v), "removing the unlabelled version "+v)
		return err
	}
	if labelled {
		u.Log.Info("Labelled the version's binaries for SELinux.", "version", v)
	}
	return nil
}
