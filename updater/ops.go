package updater

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/updater/download"
	"github.com/gravitational/teleport-update/updater/install"
)

// UpdaterBinPath is where install puts the teleport-update binary, relative
// to the root; the units run it from there.
const UpdaterBinPath = "usr/local/bin/teleport-update"

// InstallRequest is what `teleport-update install` asks for.
type InstallRequest struct {
	Proxy   string // HOST[:PORT]; required on a first install
	Group   string // "" keeps the configured group
	Token   string // "" keeps the configured token
	BaseURL string // "" keeps the configured base URL
	// Version installs exactly this version instead of the proxy's target.
	Version   string
	Overwrite bool
	// InstallMethods are TELEPORT_INSTALL_METHOD_* seen in the environment.
	InstallMethods []string
	// DisableCensus turns census reporting off for this host.
	DisableCensus bool
}

// Install installs the agent for the first time or re-installs it with new
// settings. The version is req.Version or the proxy's target regardless of
// the maintenance window. Settings are saved only if the install succeeds;
// an admin install takes the version off the skip list.
func (u *Updater) Install(ctx context.Context, req InstallRequest) (*Config, error) {
	cfg, unlock, err := u.open(ctx, false)
	if err != nil {
		if errors.Is(err, ErrConfig) {
			err = fmt.Errorf("%w (fix or remove it, then run install again)", err)
		}
		return nil, err
	}
	defer unlock()
	spec := cfg.Spec
	if req.Proxy != "" {
		spec.Proxy = req.Proxy
	}
	if req.Group != "" {
		spec.Group = req.Group
	}
	if req.Token != "" {
		spec.Token = req.Token
	}
	if req.BaseURL != "" {
		spec.BaseURL = req.BaseURL
	}
	if len(req.InstallMethods) > 0 {
		spec.InstallMethods = slices.Clone(req.InstallMethods)
	}
	if req.DisableCensus {
		spec.CensusDisabled = true
	}
	spec.Enabled = true
	if spec.CensusSalt == "" {
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return nil, fmt.Errorf("generating census salt: %w", err)
		}
		spec.CensusSalt = hex.EncodeToString(salt)
	}
	if err := ValidateProxyAddr(spec.Proxy); err != nil {
		return nil, err
	}
	if spec.BaseURL != "" {
		if err := download.ValidateBaseURL(spec.BaseURL); err != nil {
			return nil, fmt.Errorf("--base-url: %w", err)
		}
	}

	sd, done, err := u.attach(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer done()

	var target *semver.Version
	if req.Version != "" {
		if target, err = download.ParseVersion(req.Version); err != nil {
			return nil, fmt.Errorf("--version: %w", err)
		}
	} else {
		pol, err := Find(ctx, u.HTTP, spec.Proxy, spec.Group, "")
		if err != nil {
			return nil, err
		}
		target = pol.Version
		// Re-running install (config management, install.sh) must not let
		// the proxy do what the update loop refuses.
		if cfg.Status.IsSkipped(target.String()) {
			return cfg, fmt.Errorf("%w: the proxy's target %s failed its health check on this host before; run install --version %s to try it again", ErrSkipped, target, target)
		}
		if err := u.checkDowngrade(cfg, target); err != nil {
			return cfg, err
		}
	}
	ver := target.String()

	attempt := *cfg
	attempt.Spec = spec
	if req.Version != "" {
		// An admin naming a version takes it off the skip list.
		attempt.Status.removeSkip(ver)
	}
	if attempt.Spec.Pinned {
		attempt.Spec.PinnedVersion = ver
	}
	if err := u.moveTo(ctx, &attempt, sd, target, req.Overwrite, nil); err != nil {
		// Settings are kept only when the install succeeds, except on a
		// first install, where they say which proxy and CDN were tried.
		// The outcome is recorded either way.
		if cfg.Status.Active != "" || attempt.Status.Active != "" {
			cfg.Status = attempt.Status
		} else {
			cfg = &attempt
		}
		if saveErr := u.save(cfg); saveErr != nil {
			u.Log.Error("Failed to record the failed install.", "error", saveErr)
		}
		return cfg, err
	}
	if sd != nil {
		if err := sd.Enable(ctx, UpdaterTimerUnit, AgentUnit); err != nil {
			return &attempt, fmt.Errorf("enabling %s: %w", UpdaterTimerUnit, err)
		}
		if err := sd.Start(ctx, UpdaterTimerUnit); err != nil {
			return &attempt, fmt.Errorf("starting %s: %w", UpdaterTimerUnit, err)
		}
	}
	u.report(ctx, &attempt)
	return &attempt, nil
}

// moveTo fetches, switches and commits target, saving cfg at the end.
// beforeCommit, when set, edits cfg in the same save as the commit. On
// failure cfg.Status records it (and the skip list, after a rollback).
func (u *Updater) moveTo(ctx context.Context, cfg *Config, sd install.Systemd, target *semver.Version, overwrite bool, beforeCommit func(*Config)) error {
	ver := target.String()
	if cfg.Status.Active == ver {
		// Already there: reconcile made links and units say so.
		if beforeCommit != nil {
			beforeCommit(cfg)
		}
		cfg.Status.LastUpdate = &LastUpdate{Time: u.now().UTC(), Target: ver, Success: true}
		return u.saveStep(cfg)
	}
	if err := u.fetch(ctx, cfg, target); err != nil {
		u.recordFailure(cfg, ver, err)
		u.logErr(u.save(cfg), "recording the failure")
		return err
	}
	if err := u.switchTo(ctx, cfg, sd, ver, overwrite); err != nil {
		u.recordFailure(cfg, ver, err)
		if saveErr := u.save(cfg); saveErr != nil {
			return errors.Join(err, saveErr)
		}
		return err
	}
	u.commit(cfg, ver)
	if beforeCommit != nil {
		beforeCommit(cfg)
	}
	if err := u.saveStep(cfg); err != nil {
		return err
	}
	u.prune(cfg)
	return nil
}

func (u *Updater) saveStep(cfg *Config) error {
	if err := u.save(cfg); err != nil {
		return err
	}
	u.step("state")
	return nil
}

// Outcome says what an update run did.
type Outcome string

// Outcomes of Update.
const (
	OutcomeDisabled     Outcome = "disabled"
	OutcomeWindowClosed Outcome = "window closed"
	OutcomeUpToDate     Outcome = "up to date"
	OutcomeSkipped      Outcome = "target is on the skip list"
	OutcomeUpdated      Outcome = "updated"
	OutcomePinned       Outcome = "pinned"
)

// UpdateResult describes an update run.
type UpdateResult struct {
	Outcome Outcome
	From    string
	Target  string
}

// Update is the timer's entry point: it asks the proxy and moves the host
// when the window is open (or force), honouring the skip list, the
// downgrade rule and a pin. Jitter is slept unless force, and the proxy is
// asked again after it, so a window that closed meanwhile is respected.
// A census report is sent at the end of every run of an installed host.
func (u *Updater) Update(ctx context.Context, force bool) (res UpdateResult, err error) {
	// A host that was never installed gets nothing created on it.
	if _, err := os.Stat(u.Tree.StatePath()); errors.Is(err, os.ErrNotExist) {
		return res, ErrNotInstalled
	}
	cfg, unlock, err := u.open(ctx, true)
	if err != nil {
		return res, err
	}
	defer unlock()
	res.From = cfg.Status.Active
	defer u.report(ctx, cfg)
	if !cfg.Spec.Enabled {
		res.Outcome = OutcomeDisabled
		return res, nil
	}
	sd, done, err := u.attach(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer done()

	if cfg.Spec.Pinned {
		want := cfg.Spec.PinnedVersion
		res.Target = want
		switch {
		case want == "" || want == cfg.Status.Active:
			res.Outcome = OutcomePinned
			res.Target = cfg.Status.Active
			return res, nil
		case cfg.Status.IsSkipped(want):
			u.Log.Warn("The pinned version failed its health check on this host; staying where the host is. Run pin --version to try it again.", "pinned", want)
			res.Outcome = OutcomeSkipped
			return res, nil
		}
		target, err := download.ParseVersion(want)
		if err != nil {
			return res, fmt.Errorf("pinned_version in update.yaml: %w", err)
		}
		if err := u.moveTo(ctx, cfg, sd, target, false, nil); err != nil {
			return res, err
		}
		res.Outcome = OutcomeUpdated
		return res, nil
	}

	target, outcome, jitter, err := u.decide(ctx, cfg, force)
	res.Target = targetString(target)
	if err != nil || outcome != "" {
		res.Outcome = outcome
		return res, err
	}
	if !force && jitter > 0 {
		d := u.jitter(jitter)
		u.Log.Info("Waiting a random delay before updating.", "delay", d.Round(time.Millisecond), "jitter", jitter)
		if err := u.sleep(ctx, d); err != nil {
			return res, fmt.Errorf("waiting for jitter: %w", err)
		}
		// The window may have closed or the target moved meanwhile.
		target, outcome, _, err = u.decide(ctx, cfg, force)
		res.Target = targetString(target)
		if err != nil || outcome != "" {
			res.Outcome = outcome
			return res, err
		}
	}
	if err := u.moveTo(ctx, cfg, sd, target, false, nil); err != nil {
		return res, err
	}
	res.Outcome = OutcomeUpdated
	return res, nil
}

// decide asks the proxy and applies DESIGN §6. A non-empty outcome means
// there is nothing to do.
func (u *Updater) decide(ctx context.Context, cfg *Config, force bool) (*semver.Version, Outcome, time.Duration, error) {
	pol, err := Find(ctx, u.HTTP, cfg.Spec.Proxy, cfg.Spec.Group, "")
	if err != nil {
		return nil, "", 0, err
	}
	target := pol.Version.String()
	switch {
	case !pol.AutoUpdate && !force:
		return pol.Version, OutcomeWindowClosed, 0, nil
	case target == cfg.Status.Active:
		return pol.Version, OutcomeUpToDate, 0, nil
	case cfg.Status.IsSkipped(target):
		u.Log.Warn("The proxy's target failed its health check on this host before; not installing it. Run install --version or pin --version to try it again.", "target", target)
		return pol.Version, OutcomeSkipped, 0, nil
	}
	if err := u.checkDowngrade(cfg, pol.Version); err != nil {
		return pol.Version, "", 0, err
	}
	return pol.Version, "", pol.Jitter, nil
}

func targetString(v *semver.Version) string {
	if v == nil {
		return ""
	}
	return v.String()
}

// checkDowngrade enforces DESIGN §6: the proxy may move a host down only to
// a version it ran successfully before.
func (u *Updater) checkDowngrade(cfg *Config, target *semver.Version) error {
	if cfg.Status.Active == "" {
		return nil
	}
	active, err := semver.StrictNewVersion(cfg.Status.Active)
	if err != nil || !target.LessThan(active) {
		return nil
	}
	if slices.Contains(cfg.Status.KnownGood, target.String()) {
		return nil
	}
	return fmt.Errorf("%w: the proxy asks for %s but %s is active and %s never ran successfully here; an admin can run `teleport-update pin --version %s`",
		ErrDowngrade, target, active, target, target)
}

// Rollback switches to the backup version now, with a health check. The
// version rolled back from is put on the skip list so the timer does not
// reinstall it; install or pin clears that.
func (u *Updater) Rollback(ctx context.Context) (*Config, error) {
	cfg, unlock, err := u.open(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if cfg.Status.Active == "" {
		return nil, ErrNotInstalled
	}
	sd, done, err := u.attach(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	backup := cfg.Status.Backup
	if backup == "" {
		return cfg, ErrNoBackup
	}
	if _, ok, err := u.Tree.Installed(backup); err != nil || !ok {
		return cfg, fmt.Errorf("%w: %s is not installed", ErrNoBackup, backup)
	}
	from := cfg.Status.Active
	target, err := download.ParseVersion(backup)
	if err != nil {
		return cfg, fmt.Errorf("backup version in update.yaml: %w", err)
	}
	// The version rolled back from is skip-listed in the same save that
	// commits the rollback, so no crash can let the timer reinstall it.
	err = u.moveTo(ctx, cfg, sd, target, false, func(cfg *Config) {
		cfg.Status.addSkip(from)
		if cfg.Spec.Pinned && cfg.Spec.PinnedVersion == from {
			cfg.Spec.PinnedVersion = backup
		}
	})
	return cfg, err
}

// Pin holds the host at version (or the active version when empty),
// installing it first when needed. A pinned host never follows the proxy.
func (u *Updater) Pin(ctx context.Context, version string) (*Config, error) {
	cfg, unlock, err := u.open(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if version == "" {
		if cfg.Status.Active == "" {
			return cfg, fmt.Errorf("nothing is active to pin; use pin --version")
		}
		version = cfg.Status.Active
	}
	target, err := download.ParseVersion(version)
	if err != nil {
		return cfg, fmt.Errorf("--version: %w", err)
	}
	sd, done, err := u.attach(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	cfg.Status.removeSkip(target.String())
	err = u.moveTo(ctx, cfg, sd, target, false, func(cfg *Config) {
		cfg.Spec.Pinned = true
		cfg.Spec.PinnedVersion = target.String()
	})
	return cfg, err
}

// Unpin lets the host follow the proxy again.
func (u *Updater) Unpin(ctx context.Context) (*Config, error) {
	return u.edit(ctx, func(cfg *Config) error {
		cfg.Spec.Pinned = false
		cfg.Spec.PinnedVersion = ""
		return nil
	})
}

// SetEnabled turns automatic updates on or off, and the timer with them.
func (u *Updater) SetEnabled(ctx context.Context, enabled bool) (*Config, error) {
	return u.edit(ctx, func(cfg *Config) error {
		cfg.Spec.Enabled = enabled
		sd, err := u.systemd(ctx)
		if err != nil || sd == nil {
			if err == nil {
				u.Log.Warn("No systemd on this host; the timer was not touched.")
			}
			return err
		}
		defer sd.Close()
		if enabled {
			if err := sd.Enable(ctx, UpdaterTimerUnit); err != nil {
				return err
			}
			return sd.Start(ctx, UpdaterTimerUnit)
		}
		if err := sd.Stop(ctx, UpdaterTimerUnit); err != nil {
			return err
		}
		return sd.Disable(ctx, UpdaterTimerUnit)
	})
}

// SetCensus turns census reporting on or off. Turning it on is explicit:
// the host reports even while its automatic updates are disabled.
func (u *Updater) SetCensus(ctx context.Context, enabled bool) (*Config, error) {
	return u.edit(ctx, func(cfg *Config) error {
		cfg.Spec.CensusDisabled = !enabled
		cfg.Spec.CensusEnabled = enabled
		return nil
	})
}

func (u *Updater) edit(ctx context.Context, f func(*Config) error) (*Config, error) {
	cfg, unlock, err := u.open(ctx, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := f(cfg); err != nil {
		return cfg, err
	}
	return cfg, u.save(cfg)
}

// Uninstall stops and removes the units, the links, every version and
// update.yaml. The agent's data directory stays. It returns what it removed.
func (u *Updater) Uninstall(ctx context.Context) ([]string, error) {
	unlock, err := u.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var removed []string
	sd, err := u.systemd(ctx)
	if err != nil {
		return nil, err
	}
	if sd != nil {
		defer sd.Close()
		for _, unit := range []string{UpdaterTimerUnit, AgentUnit} {
			if err := sd.Stop(ctx, unit); err != nil {
				u.Log.Warn("Failed to stop unit.", "unit", unit, "error", err)
			}
			if err := sd.Disable(ctx, unit); err != nil {
				u.Log.Warn("Failed to disable unit.", "unit", unit, "error", err)
			}
		}
	}
	units, err := u.Tree.RemoveUnits()
	removed = append(removed, units...)
	if err != nil {
		return removed, fmt.Errorf("removing units: %w", err)
	}
	if sd != nil {
		if err := sd.DaemonReload(ctx); err != nil {
			u.Log.Warn("daemon-reload failed.", "error", err)
		}
	}
	links, err := u.Tree.Unlink()
	removed = append(removed, links...)
	if err != nil {
		return removed, fmt.Errorf("removing links: %w", err)
	}
	if _, err := u.Tree.CleanLeftovers(); err != nil {
		return removed, err
	}
	versions, err := u.Tree.Versions()
	if err != nil {
		return removed, err
	}
	for _, v := range versions {
		if err := u.Tree.RemoveVersion(v); err != nil {
			return removed, fmt.Errorf("removing version %s: %w", v, err)
		}
		removed = append(removed, u.Tree.VersionDir(v))
	}
	if err := os.Remove(u.Tree.StatePath()); err == nil {
		removed = append(removed, u.Tree.StatePath())
	}
	self := filepath.Join(u.Tree.Root, UpdaterBinPath)
	if err := os.Remove(self); err == nil {
		removed = append(removed, self)
	}
	// The lock file goes last, while still held: a run waiting on it
	// finds no update.yaml and stops with ErrNotInstalled.
	if err := os.Remove(u.Tree.LockPath()); err == nil {
		removed = append(removed, u.Tree.LockPath())
	}
	return removed, nil
}

func (u *Updater) report(ctx context.Context, cfg *Config) {
	if u.Report != nil {
		u.Report(ctx, cfg)
	}
}

// open takes update.lock and loads update.yaml. With requireInstalled, a
// host without a proxy configured is ErrNotInstalled. The caller must call
// unlock.
func (u *Updater) open(ctx context.Context, requireInstalled bool) (cfg *Config, unlock func(), err error) {
	unlock, err = u.lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	cfg, exists, err := u.load()
	if err == nil && requireInstalled && (!exists || cfg.Spec.Proxy == "") {
		err = ErrNotInstalled
	}
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return cfg, unlock, nil
}

// attach connects to systemd (when the host has it) and repairs what an
// interrupted run left. The caller must call done.
func (u *Updater) attach(ctx context.Context, cfg *Config) (sd install.Systemd, done func(), err error) {
	sd, err = u.systemd(ctx)
	if err != nil {
		return nil, nil, err
	}
	done = func() {
		if sd != nil {
			sd.Close()
		}
	}
	if err := u.reconcile(ctx, cfg, sd); err != nil {
		done()
		return nil, nil, err
	}
	return sd, done, nil
}
