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
	AgentUnit        = install.AgentUnit
	UpdaterUnit      = install.UpdaterUnit
	UpdaterTimerUnit = install.UpdaterTimerUnit
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
	// ErrSkipped: the requested version is on the skip list.
	ErrSkipped = errors.New("version is skip-listed")
	// ErrNoBackup: rollback was asked for but there is no backup version.
	ErrNoBackup = errors.New("no backup version to roll back to")
	// ErrHealth: the version failed its health check and no previous
	// version was there to go back to.
	ErrHealth = errors.New("health check failed")
	// ErrSwitch: a switch did not complete for a reason that is not the
	// version's fault (interrupted, systemd failed); the host went back and
	// the version is not skip-listed.
	ErrSwitch = errors.New("switch did not complete")
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
	release, err := u.Tree.Lock(ctx, u.LockWait)
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
// version directories go, a missing or damaged active version is fetched
// again, and links and units go back to status.active (the last committed
// state). When status.switching says a switch was under way, the agent is
// restarted on the active version, since systemd may still run the other
// one. Otherwise the agent is never restarted here: a unit rendered
// differently by a newer teleport-update takes effect at the next restart,
// not outside the window.
//
// Repairing the active version is best effort: when it cannot be fetched
// again, links, units and status.switching are left as they are and
// broken says why, so that an operation moving the host to another
// version can still go on. err is a failure nothing can go on after.
func (u *Updater) reconcile(ctx context.Context, cfg *Config, sd install.Systemd) (broken, err error) {
	removed, err := u.Tree.CleanLeftovers()
	if err != nil {
		return nil, fmt.Errorf("cleaning up after an earlier run: %w", err)
	}
	for _, r := range removed {
		u.Log.Info("Removed leftovers of an interrupted run.", "path", r)
	}
	active, switching := cfg.Status.Active, cfg.Status.Switching
	if switching != "" {
		u.Log.Warn("An earlier run was interrupted while switching versions; restoring the active version.", "active", active, "switching_to", switching)
	}
	if active == "" {
		if linked, err := u.Tree.LinkedVersion(); err != nil {
			return nil, fmt.Errorf("reading links: %w", err)
		} else if linked != "" {
			u.Log.Warn("An interrupted first install left links behind; removing them.", "linked", linked)
			if _, err := u.Tree.Unlink(); err != nil {
				return nil, fmt.Errorf("removing links of an interrupted install: %w", err)
			}
		}
		if switching != "" && sd != nil {
			if _, err := u.Tree.RemoveUnits(); err != nil {
				u.Log.Warn("Failed to remove the units of an interrupted first install.", "error", err)
			}
			u.logErr(sd.DaemonReload(ctx), "daemon-reload")
			u.logErr(sd.Stop(ctx, AgentUnit), "stopping "+AgentUnit)
			u.logErr(sd.ResetFailed(ctx, AgentUnit), "reset-failed "+AgentUnit)
		}
		return nil, u.clearSwitching(cfg)
	}
	if broken := u.repairActive(ctx, cfg); broken != nil {
		u.Log.Error("The active version is missing or damaged and could not be fetched again; links and units are left as they are. Moving to another version (update, install --version, pin --version, rollback) can still repair the host.", "active", active, "error", broken)
		return broken, nil
	}
	linked, err := u.Tree.LinkedVersions()
	if err != nil {
		return nil, fmt.Errorf("reading links: %w", err)
	}
	if len(linked) != 1 || linked[0] != active {
		u.Log.Warn("Links do not match the active version; restoring them.", "active", active, "linked", linked)
	}
	// Link is idempotent: it recreates missing links and moves ours back
	// to the active version; a file an admin put there is left alone.
	if _, err := u.Tree.Link(active, false); err != nil {
		if !errors.Is(err, install.ErrNotOurs) {
			return nil, fmt.Errorf("restoring links to %s: %w", active, err)
		}
		u.Log.Warn("A file teleport-update did not create is in the way of a link; leaving it.", "error", err)
	}
	if sd != nil {
		opts := u.Units
		opts.Version = active
		_, changed, err := u.Tree.WriteUnits(opts)
		if err != nil {
			return nil, fmt.Errorf("restoring units for %s: %w", active, err)
		}
		if changed {
			u.Log.Info("Rewrote the systemd units for the active version.", "active", active)
			if err := sd.DaemonReload(ctx); err != nil {
				return nil, fmt.Errorf("daemon-reload: %w", err)
			}
		}
		if switching != "" {
			if err := sd.DaemonReload(ctx); err != nil {
				return nil, fmt.Errorf("daemon-reload: %w", err)
			}
			u.logErr(sd.ResetFailed(ctx, AgentUnit), "reset-failed "+AgentUnit)
			if err := sd.Restart(ctx, AgentUnit); err != nil {
				return nil, fmt.Errorf("restarting %s on %s: %w", AgentUnit, active, err)
			}
		}
	}
	return nil, u.clearSwitching(cfg)
}

// repairActive fetches the active version again when it is missing or
// damaged (a damaged directory is replaced, not trusted because of its
// .verified marker). It returns why the active version is still unusable,
// nil when it is intact.
func (u *Updater) repairActive(ctx context.Context, cfg *Config) error {
	active := cfg.Status.Active
	err := u.Tree.Intact(active)
	if err == nil {
		return nil
	}
	if !errors.Is(err, install.ErrVersionNotInstalled) && !errors.Is(err, install.ErrDamaged) {
		return fmt.Errorf("checking the active version %s: %w", active, err)
	}
	u.Log.Warn("The active version is missing or damaged; fetching it again.", "version", active, "reason", err)
	v, err := download.ParseVersion(active)
	if err != nil {
		return fmt.Errorf("active version in update.yaml: %w", err)
	}
	if err := u.fetch(ctx, cfg, v); err != nil {
		return fmt.Errorf("repairing the active version %s: %w", active, err)
	}
	return nil
}

func (u *Updater) clearSwitching(cfg *Config) error {
	if cfg.Status.Switching == "" {
		return nil
	}
	cfg.Status.Switching = ""
	return u.save(cfg)
}

func (u *Updater) logErr(err error, op string) {
	if err != nil {
		u.Log.Warn("Operation failed.", "op", op, "error", err)
	}
}

// fetch makes sure target is installed and intact under versions/,
// downloading and verifying it when it is not. A damaged directory is
// replaced once the download is verified.
func (u *Updater) fetch(ctx context.Context, cfg *Config, target *semver.Version) error {
	ver := target.String()
	switch err := u.Tree.Intact(ver); {
	case err == nil:
		u.Log.Info("Version already installed; not downloading it again.", "version", ver)
		return nil
	case errors.Is(err, install.ErrDamaged):
		u.Log.Warn("The version's directory is damaged; fetching the version again.", "version", ver, "reason", err)
	case !errors.Is(err, install.ErrVersionNotInstalled):
		return fmt.Errorf("checking installed versions: %w", err)
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
	if removed, err := u.Tree.RemoveDamaged(ver); err != nil {
		return fmt.Errorf("removing the damaged version %s: %w", ver, err)
	} else if removed {
		u.Log.Info("Removed the damaged version directory.", "version", ver)
	}
	if err := u.Tree.Extract(ctx, got.Path, ver, got.SHA256, u.Limits); err != nil {
		return fmt.Errorf("installing %s: %w", ver, err)
	}
	u.step("extract")
	return nil
}

// rollbackBudget bounds a rollback, which runs to completion even when the
// run itself is being stopped.
const rollbackBudget = 2 * time.Minute

// switchTo makes target the running version: links, units, restart, health
// check. status.switching is saved first, so an interrupted run is repaired
// by the next one. When the target fails its health check, it goes back to
// the previous version, skip-lists target and returns an error wrapping
// ErrRolledBack (ErrHealth when there was nothing to go back to). When the
// run is interrupted, or the switch fails for a reason that is not the
// version's fault (systemd, D-Bus), it goes back without skip-listing and
// returns ErrSwitch. The caller saves cfg in every case.
func (u *Updater) switchTo(ctx context.Context, cfg *Config, sd install.Systemd, target string, overwrite bool) error {
	prev := cfg.Status.Active
	prevAgentActive := false
	if sd != nil && prev == "" {
		if st, err := sd.State(ctx, AgentUnit); err == nil {
			prevAgentActive = st.ActiveState == "active"
		}
	}
	cfg.Status.Switching = target
	if err := u.save(cfg); err != nil {
		cfg.Status.Switching = ""
		return fmt.Errorf("recording the switch to %s: %w", target, err)
	}
	revertLinks, err := u.Tree.Link(target, overwrite)
	if err != nil {
		cfg.Status.Switching = ""
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
			healthErr = fmt.Errorf("writing units for %s: %w", target, err)
			revertUnits = func() error { return nil }
		} else {
			u.step("units")
			healthErr = u.restartAndCheck(ctx, sd, target, "")
		}
	}
	if healthErr == nil {
		u.Log.Info("New version is healthy.", "version", target)
		return nil
	}

	// The way back must finish even when this run is being stopped.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackBudget)
	defer cancel()
	interrupted := ctx.Err() != nil
	atFault := !interrupted && errors.Is(healthErr, install.ErrUnhealthy)
	if atFault && sd != nil && u.shutdownExcuses(ctx, rctx, sd, target) {
		atFault = false
	}
	if atFault {
		u.Log.Error("New version failed its health check; rolling back.", "version", target, "error", healthErr, "previous", prev)
		cfg.Status.addSkip(target)
		u.logErr(u.save(cfg), "saving the skip list")
	} else {
		u.Log.Error("Switch did not complete; going back.", "version", target, "error", healthErr, "interrupted", interrupted, "previous", prev)
	}
	u.logErr(revertUnits(), "restoring the previous units")
	u.logErr(revertLinks(), "restoring the previous links")
	u.step("revert")
	if prev == "" {
		if sd != nil {
			u.logErr(sd.DaemonReload(rctx), "daemon-reload")
			u.logErr(sd.ResetFailed(rctx, AgentUnit), "reset-failed "+AgentUnit)
			if prevAgentActive {
				// An agent ran before this first install (e.g. from a
				// package): bring it back rather than leave the host without.
				u.logErr(sd.Restart(rctx, AgentUnit), "restarting the previous "+AgentUnit)
			} else {
				u.logErr(sd.Stop(rctx, AgentUnit), "stopping "+AgentUnit)
			}
		}
		cfg.Status.Switching = ""
		if atFault {
			return fmt.Errorf("%w: %s: %w", ErrHealth, target, healthErr)
		}
		return fmt.Errorf("%w: installing %s: %w", ErrSwitch, target, healthErr)
	}
	if sd != nil {
		if err := sd.DaemonReload(rctx); err != nil {
			return fmt.Errorf("going back to %s: daemon-reload: %w (switch to %s: %v)", prev, err, target, healthErr)
		}
		u.logErr(sd.ResetFailed(rctx, AgentUnit), "reset-failed "+AgentUnit)
	}
	if err := u.restartAndCheck(rctx, sd, prev, "previous-"); err != nil {
		return fmt.Errorf("went back to %s, but it is not healthy either: %w (switch to %s: %v)", prev, err, target, healthErr)
	}
	cfg.Status.Switching = ""
	if !atFault {
		u.Log.Info("Went back to the previous version; it is healthy.", "version", prev)
		return fmt.Errorf("%w: switching to %s did not complete, went back to %s: %w", ErrSwitch, target, prev, healthErr)
	}
	u.Log.Info("Rolled back; the previous version is healthy.", "version", prev, "skipped", target)
	return fmt.Errorf("%w to %s: %s failed its health check: %w", ErrRolledBack, prev, target, healthErr)
}

// Bounds of asking systemd whether it is shutting down after a failed
// health check.
const (
	shutdownQueryTimeout = 5 * time.Second
	shutdownQueryRetry   = 2 * time.Second
)

// shutdownExcuses reports whether a failed health check of target is
// excused by a shutdown, which stops the agent, maybe before this run gets
// its SIGTERM. It is when systemd says it is shutting down, or cannot say
// (a shutdown also stops the D-Bus daemon) and this run is stopped before a
// second try. When systemd cannot say and the run goes on, the health check
// counts, so a broken version is not retried on every run.
func (u *Updater) shutdownExcuses(ctx, rctx context.Context, sd install.Systemd, target string) bool {
	query := func() (bool, error) {
		qctx, cancel := context.WithTimeout(rctx, shutdownQueryTimeout)
		defer cancel()
		return sd.ShuttingDown(qctx)
	}
	down, err := query()
	if err != nil {
		select {
		case <-ctx.Done():
		case <-time.After(shutdownQueryRetry):
		}
		if ctx.Err() != nil {
			u.Log.Warn("This run was stopped while asking systemd whether the system is shutting down; the failed health check is not the new version's fault.", "version", target, "error", err)
			return true
		}
		down, err = query()
	}
	switch {
	case err != nil:
		u.Log.Warn("Could not ask systemd whether the system is shutting down; the failed health check counts.", "version", target, "error", err)
		return false
	case down:
		u.Log.Warn("The system is shutting down; the failed health check is not the new version's fault.", "version", target)
	}
	return down
}

// restartAndCheck reloads systemd, restarts the agent on version and checks
// its health. stepPrefix names the steps for the crash tests ("" for the new
// version, "previous-" when going back).
func (u *Updater) restartAndCheck(ctx context.Context, sd install.Systemd, version, stepPrefix string) error {
	if sd == nil {
		return u.execCheck(ctx, version)
	}
	if err := sd.DaemonReload(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	u.step(stepPrefix + "reload")
	if err := sd.Restart(ctx, AgentUnit); err != nil {
		if errors.Is(err, install.ErrJobFailed) {
			// systemd ran the job and the unit did not come up.
			return fmt.Errorf("%w: restarting %s on %s: %w", install.ErrUnhealthy, AgentUnit, version, err)
		}
		return fmt.Errorf("restarting %s: %w", AgentUnit, err)
	}
	u.step(stepPrefix + "restart")
	if err := install.CheckUnitHealth(ctx, sd, AgentUnit, u.Health); err != nil {
		return err
	}
	return u.execCheck(ctx, version)
}

func (u *Updater) execCheck(ctx context.Context, version string) error {
	bin := filepath.Join(u.Tree.VersionDir(version), "bin", "teleport")
	err := install.CheckExec(ctx, bin, version)
	if err != nil && ctx.Err() != nil {
		// Stopped, not unhealthy.
		return fmt.Errorf("checking %s: %w", version, ctx.Err())
	}
	return err
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
	st.Switching = ""
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
	case errors.Is(err, ErrSwitch):
		return "switch"
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
