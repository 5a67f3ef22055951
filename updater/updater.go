// Package updater is the update loop: it reads and writes update.yaml, asks
// the proxy for policy, decides whether to move (window, skip list, downgrade
// rule, pin), and drives the verified download, the side-by-side install, the
// unit swap, the health check and the rollback.
//
// update.yaml is the commit point: it is written only after the host reached
// the state it records. A run killed at any step leaves the previous state
// recorded, and the next run first puts links and units back to it.
package updater

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/updater/download"
	"github.com/gravitational/teleport-update/updater/install"
	"github.com/gravitational/teleport-update/updater/verify"
)

// Unit names the updater manages.
const (
	AgentUnit        = "teleport.service"
	UpdaterUnit      = "teleport-update.service"
	UpdaterTimerUnit = "teleport-update.timer"
)

// Sentinel outcomes callers map to messages and exit codes.
var (
	// ErrNotInstalled: update.yaml has no proxy; run install first.
	ErrNotInstalled = errors.New("teleport-update is not installed on this host")
	// ErrRolledBack: the new version failed its health check and the host
	// went back to the previous version.
	ErrRolledBack = errors.New("rolled back")
	// ErrDowngrade: the proxy asked for a downgrade this host may not take.
	ErrDowngrade = errors.New("downgrade refused")
	// ErrNoBackup: rollback was asked for but there is no backup version.
	ErrNoBackup = errors.New("no backup version to roll back to")
	// ErrHealth: the version failed its health check and no previous
	// version was there to go back to.
	ErrHealth = errors.New("health check failed")
)

// Systemd connects to the host's systemd. It returns (nil, nil) when the
// host has no systemd, in which case unit operations are skipped.
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
	// AfterStep, when set, is called after each step of a switch (tests
	// use it to kill the process at every step).
	AfterStep func(step string)
	// Report, when set, is called at the end of install and update runs
	// with the saved config (the census). It must not block for long; its
	// failure never changes the outcome.
	Report func(ctx context.Context, cfg *Config)
}

func (u *Updater) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

func (u *Updater) step(name string) {
	if u.AfterStep != nil {
		u.AfterStep(name)
	}
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

func (u *Updater) artifact(v *semver.Version) download.Artifact {
	a := download.Artifact{Product: "teleport", Version: v, OS: u.OS, Arch: u.Arch}
	if a.OS == "" {
		a.OS = runtime.GOOS
	}
	if a.Arch == "" {
		a.Arch = runtime.GOARCH
	}
	return a
}

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

// lock takes update.lock for the whole operation.
func (u *Updater) lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(u.Tree.DataDir(), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", u.Tree.DataDir(), err)
	}
	release, err := install.AcquireLock(ctx, u.Tree.LockPath(), u.LockWait)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := release(); err != nil {
			u.Log.Warn("Failed to release the update lock.", "error", err)
		}
	}, nil
}

func (u *Updater) load() (*Config, bool, error) {
	return LoadConfig(u.Tree.StatePath())
}

func (u *Updater) save(cfg *Config) error {
	return SaveConfig(u.Tree.StatePath(), cfg)
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

// reconcile repairs what an interrupted run left: staging and incomplete
// version directories go, and links and units go back to status.active
// (the last state that was committed).
func (u *Updater) reconcile(ctx context.Context, cfg *Config, sd install.Systemd) error {
	removed, err := u.Tree.CleanLeftovers()
	if err != nil {
		return fmt.Errorf("cleaning up after an earlier run: %w", err)
	}
	for _, r := range removed {
		u.Log.Info("Removed leftovers of an interrupted run.", "path", r)
	}
	linked, err := u.Tree.LinkedVersion()
	if err != nil {
		return fmt.Errorf("reading links: %w", err)
	}
	active := cfg.Status.Active
	if active == "" {
		if linked != "" {
			u.Log.Warn("An interrupted first install left links behind; removing them.", "linked", linked)
			if _, err := u.Tree.Unlink(); err != nil {
				return fmt.Errorf("removing links of an interrupted install: %w", err)
			}
		}
		return nil
	}
	if _, ok, err := u.Tree.Installed(active); err != nil || !ok {
		return fmt.Errorf("the active version %s recorded in update.yaml is not installed under %s", active, u.Tree.VersionDir(active))
	}
	if linked != active {
		u.Log.Warn("An earlier run was interrupted; restoring the active version.", "active", active, "linked", linked)
		if _, err := u.Tree.Link(active, true); err != nil {
			return fmt.Errorf("restoring links to %s: %w", active, err)
		}
	}
	if sd == nil {
		return nil
	}
	opts := u.Units
	opts.Version = active
	_, changed, err := u.Tree.WriteUnits(opts)
	if err != nil {
		return fmt.Errorf("restoring units for %s: %w", active, err)
	}
	if changed {
		u.Log.Warn("Units did not match the active version; restored them.", "active", active)
		if err := sd.DaemonReload(ctx); err != nil {
			return fmt.Errorf("daemon-reload: %w", err)
		}
		_ = sd.ResetFailed(ctx, AgentUnit)
		if err := sd.Restart(ctx, AgentUnit); err != nil {
			return fmt.Errorf("restarting %s on %s: %w", AgentUnit, active, err)
		}
	}
	return nil
}

// fetch makes sure target is installed under versions/, downloading and
// verifying it when it is not.
func (u *Updater) fetch(ctx context.Context, cfg *Config, target *semver.Version) error {
	ver := target.String()
	if _, ok, err := u.Tree.Installed(ver); err != nil {
		return fmt.Errorf("checking installed versions: %w", err)
	} else if ok {
		u.Log.Info("Version already installed; not downloading it again.", "version", ver)
		return nil
	}
	ks, err := u.keys()
	if err != nil {
		return err
	}
	base := cfg.Spec.BaseURL
	if base == "" {
		base = download.DefaultBaseURL
	}
	staging, err := u.Tree.NewStaging()
	if err != nil {
		return fmt.Errorf("creating staging directory: %w", err)
	}
	defer os.RemoveAll(staging)
	maxSize := u.MaxArtifactSize
	if maxSize <= 0 {
		maxSize = download.DefaultMaxArtifactSize
	}
	start := u.now()
	got, err := u.HTTP.FetchVerified(ctx, base, u.artifact(target), ks, staging, maxSize, u.now(), u.Progress)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", ver, err)
	}
	u.Log.Info("Download verified.", "version", ver, "bytes", got.Size, "sha256", got.SHA256, "duration", u.now().Sub(start).Round(time.Millisecond))
	u.step("download")
	if err := u.Tree.Extract(ctx, got.Path, ver, got.SHA256, u.Limits); err != nil {
		return fmt.Errorf("installing %s: %w", ver, err)
	}
	u.step("extract")
	return nil
}

// switchTo makes target the running version: links, units, restart, health
// check; on a failed health check it goes back to the previous version,
// skip-lists target and returns an error wrapping ErrRolledBack (or ErrHealth
// when there was nothing to go back to). The caller saves cfg in every case.
func (u *Updater) switchTo(ctx context.Context, cfg *Config, sd install.Systemd, target string, overwrite bool) error {
	prev := cfg.Status.Active
	revertLinks, err := u.Tree.Link(target, overwrite)
	if err != nil {
		return fmt.Errorf("linking %s: %w", target, err)
	}
	u.step("link")
	revertUnits := func() error { return nil }
	var healthErr error
	if sd == nil {
		u.Log.Warn("No systemd on this host; units were not touched. Checking the binary instead.", "version", target)
		healthErr = u.execCheck(ctx, target)
	} else {
		opts := u.Units
		opts.Version = target
		revertUnits, _, err = u.Tree.WriteUnits(opts)
		if err != nil {
			_ = revertLinks()
			return fmt.Errorf("writing units for %s: %w", target, err)
		}
		u.step("units")
		healthErr = u.restartAndCheck(ctx, sd, target)
	}
	if healthErr == nil {
		u.Log.Info("New version is healthy.", "version", target)
		return nil
	}

	u.Log.Error("New version failed its health check; rolling back.", "version", target, "error", healthErr, "previous", prev)
	cfg.Status.addSkip(target)
	if err := revertUnits(); err != nil {
		u.Log.Error("Failed to restore the previous units.", "error", err)
	}
	if err := revertLinks(); err != nil {
		u.Log.Error("Failed to restore the previous links.", "error", err)
	}
	u.step("revert")
	if prev == "" {
		if sd != nil {
			_ = sd.Stop(ctx, AgentUnit)
			_ = sd.DaemonReload(ctx)
			_ = sd.ResetFailed(ctx, AgentUnit)
		}
		return fmt.Errorf("%w: %s: %w", ErrHealth, target, healthErr)
	}
	if sd != nil {
		if err := sd.DaemonReload(ctx); err != nil {
			return fmt.Errorf("rolling back to %s: daemon-reload: %w (health check of %s: %v)", prev, err, target, healthErr)
		}
		_ = sd.ResetFailed(ctx, AgentUnit)
	}
	if err := u.restartAndCheck(ctx, sd, prev); err != nil {
		return fmt.Errorf("%w to %s, but it is not healthy either: %w (health check of %s: %v)", ErrRolledBack, prev, err, target, healthErr)
	}
	u.Log.Info("Rolled back; the previous version is healthy.", "version", prev, "skipped", target)
	return fmt.Errorf("%w to %s: %s failed its health check: %w", ErrRolledBack, prev, target, healthErr)
}

func (u *Updater) restartAndCheck(ctx context.Context, sd install.Systemd, version string) error {
	if sd == nil {
		return u.execCheck(ctx, version)
	}
	if err := sd.DaemonReload(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	u.step("reload")
	if err := sd.Restart(ctx, AgentUnit); err != nil {
		return fmt.Errorf("restarting %s: %w", AgentUnit, err)
	}
	u.step("restart")
	if err := install.CheckUnitHealth(ctx, sd, AgentUnit, u.Health); err != nil {
		return err
	}
	return u.execCheck(ctx, version)
}

func (u *Updater) execCheck(ctx context.Context, version string) error {
	bin := filepath.Join(u.Tree.VersionDir(version), "bin", "teleport")
	return install.CheckExec(ctx, bin, version)
}

// commit records a successful switch to target.
func (u *Updater) commit(cfg *Config, target string) {
	st := &cfg.Status
	if st.Active != target {
		if st.Active != "" {
			st.Backup = st.Active
		}
		st.Active = target
	}
	if st.Backup == target {
		st.Backup = ""
	}
	st.addKnownGood(target)
	st.LastUpdate = &LastUpdate{Time: u.now().UTC(), Target: target, Success: true}
}

func (u *Updater) recordFailure(cfg *Config, target string, err error) {
	cfg.Status.LastUpdate = &LastUpdate{Time: u.now().UTC(), Target: target, Success: false, Error: oneLine(err.Error()), ErrorCode: ErrorCode(err)}
}

// ErrorCode classifies an update error in one machine-readable word, for
// the census: verification, health_check, download, proxy, downgrade,
// interrupted or other.
func ErrorCode(err error) string {
	var hs *download.HTTPStatusError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, verify.ErrVerification):
		return "verification"
	case errors.Is(err, ErrRolledBack), errors.Is(err, ErrHealth), errors.Is(err, install.ErrUnhealthy):
		return "health_check"
	case errors.Is(err, ErrProxy):
		return "proxy"
	case errors.Is(err, ErrDowngrade):
		return "downgrade"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "interrupted"
	case errors.As(err, &hs), errors.Is(err, download.ErrStalled), errors.Is(err, download.ErrTooLarge), errors.Is(err, download.ErrTooSlow), errors.Is(err, download.ErrRedirectRefused), errors.Is(err, download.ErrInsecureURL):
		return "download"
	}
	return "other"
}

// prune removes versions other than active and backup.
func (u *Updater) prune(cfg *Config) {
	keep := []string{}
	for _, v := range []string{cfg.Status.Active, cfg.Status.Backup} {
		if v != "" {
			keep = append(keep, v)
		}
	}
	removed, err := u.Tree.Prune(keep...)
	if err != nil {
		u.Log.Warn("Failed to remove old versions.", "error", err)
	}
	for _, r := range removed {
		u.Log.Info("Removed old version.", "version", r)
	}
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	if len(b) > 1000 {
		return string(b[:1000]) + "…"
	}
	return string(b)
}
