package updater

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/census"
	"github.com/gravitational/teleport-update/updater/download"
	"github.com/gravitational/teleport-update/updater/install"
)

// UpdaterBinPath is where install puts the teleport-update binary, relative
// to the root; the units run it from there.
const UpdaterBinPath = install.UpdaterRel

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

// Install installs the agent for the first time, or re-installs it with
// new settings.
//
// The version is req.Version when given: an admin's choice, installed
// regardless of the window, taken off the skip list, and the new pin of a
// pinned host. Without it, a first install takes the proxy's target
// regardless of the window. A re-install without it decides as the timer
// would (see reinstallTarget), so re-running install changes nothing an
// admin set: it never turns a disabled host back on and never takes
// pinned_version from the proxy.
//
// Settings are saved when the install succeeds, including when it keeps
// the active version; a refused or failed install keeps the previous ones,
// except on a first install, where they say which proxy and CDN were
// tried. The outcome is recorded either way.
func (u *Updater) Install(ctx context.Context, req InstallRequest) (*Config, error) {
	cfg, unlock, err := u.open(ctx, false)
	if err != nil {
		if errors.Is(err, ErrConfig) {
			err = fmt.Errorf("%w (fix or remove it, then run install again)", err)
		}
		return nil, err
	}
	defer unlock()
	spec, err := installSpec(cfg.Spec, req)
	if err != nil {
		return nil, err
	}
	s, err := u.attach(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.close()

	// The attempt is a deep copy: a failure records its status next to
	// the previous settings.
	attempt := cfg.Clone()
	attempt.Spec = spec
	target, err := u.installTarget(ctx, attempt, req.Version)
	if err != nil {
		return cfg, err
	}
	ver := target.String()
	if req.Version != "" {
		// An admin naming a version takes it off the skip list.
		attempt.Status.removeSkip(ver)
		if attempt.Spec.Pinned {
			attempt.Spec.PinnedVersion = ver
		}
	}
	if req.Version == "" && ver == attempt.Status.Active && u.Tree.Intact(ver) == nil {
		// Kept: only the settings change, and last_update still tells of
		// the last real attempt.
		if err := u.save(attempt); err != nil {
			return cfg, err
		}
	} else if err := u.moveTo(ctx, attempt, s.sd, target, req.Overwrite, nil); err != nil {
		return u.failedInstall(cfg, attempt), err
	}
	if err := u.enableUnits(ctx, s.sd, attempt.Spec.Enabled); err != nil {
		return attempt, err
	}
	u.report(ctx, attempt)
	return attempt, nil
}

// failedInstall saves the outcome of a failed install with the previous
// settings, or, on a first install, with the settings tried, which say
// which proxy and CDN that was. It returns what it saved.
func (u *Updater) failedInstall(prev, attempt *Config) *Config {
	saved := attempt
	if prev.Status.Active != "" || attempt.Status.Active != "" {
		saved = prev
		saved.Status = attempt.Status
	}
	if err := u.save(saved); err != nil {
		u.Log.Error("Failed to record the failed install.", "error", err)
	}
	return saved
}

// installSpec returns spec with the settings req gives, validated. It
// never changes enabled, pinned or pinned_version.
func installSpec(spec Spec, req InstallRequest) (Spec, error) {
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
	if spec.CensusSalt == "" {
		salt, err := census.NewSalt()
		if err != nil {
			return spec, err
		}
		spec.CensusSalt = hex.EncodeToString(salt)
	}
	if err := ValidateProxyAddr(spec.Proxy); err != nil {
		return spec, err
	}
	if spec.BaseURL != "" {
		if err := download.ValidateBaseURL(spec.BaseURL); err != nil {
			return spec, fmt.Errorf("--base-url: %w", err)
		}
	}
	return spec, nil
}

// installTarget picks the version install moves the host to (the active
// version when it keeps it): version when given, the proxy's target on a
// first install, and otherwise what reinstallTarget decides.
func (u *Updater) installTarget(ctx context.Context, cfg *Config, version string) (*semver.Version, error) {
	if version != "" {
		v, err := download.ParseVersion(version)
		if err != nil {
			return nil, fmt.Errorf("--version: %w", err)
		}
		return v, nil
	}
	if cfg.Status.Active != "" {
		return u.reinstallTarget(ctx, cfg)
	}
	pol, err := Find(ctx, u.HTTP, cfg.Spec.Proxy, cfg.Spec.Group, "")
	if err != nil {
		return nil, err
	}
	if cfg.Status.IsSkipped(pol.Version.String()) {
		return nil, skippedTargetError(pol.Version)
	}
	return pol.Version, nil
}

// reinstallTarget decides a re-install without --version of an installed
// host as the timer would decide now, and says why when it keeps the
// active version:
//   - disabled: keeps it; the proxy is not asked.
//   - pinned: goes to the pin (unless it failed its health check here);
//     the proxy is not asked.
//   - following the proxy: moves to the proxy's target only inside the
//     window and only when the proxy asks for no jitter; with jitter, the
//     timer moves the host after its random delay. A skip-listed target and
//     a downgrade to a version that never ran here are refused.
func (u *Updater) reinstallTarget(ctx context.Context, cfg *Config) (*semver.Version, error) {
	active, err := download.ParseVersion(cfg.Status.Active)
	if err != nil {
		return nil, fmt.Errorf("active version in update.yaml: %w", err)
	}
	if !cfg.Spec.Enabled {
		u.Log.Warn("Automatic updates are disabled on this host: install saved the settings and kept the active version. Run `teleport-update enable` to follow the proxy again, or install --version to choose a version.", "active", active)
		return active, nil
	}
	if cfg.Spec.Pinned {
		target, outcome, err := u.pinnedTarget(cfg)
		if err != nil {
			return nil, err
		}
		if outcome != "" {
			u.Log.Info("This host is pinned: install saved the settings and kept the active version. Run `teleport-update unpin` to follow the proxy again.", "active", active, "pinned", cfg.Spec.PinnedVersion)
			return active, nil
		}
		return target, nil
	}
	pol, err := Find(ctx, u.HTTP, cfg.Spec.Proxy, cfg.Spec.Group, "")
	if err != nil {
		return nil, err
	}
	outcome, err := decidePolicy(cfg, pol, false)
	switch {
	case err != nil:
		return nil, err
	case outcome == OutcomeSkipped:
		return nil, skippedTargetError(pol.Version)
	case outcome == OutcomeWindowClosed:
		u.Log.Info("The group's maintenance window is closed: install saved the settings and kept the active version; the timer moves the host in the window, or run `teleport-update update --now`.", "active", active, "target", pol.Version)
		return active, nil
	case outcome == OutcomeUpToDate:
		return active, nil
	case pol.Jitter > 0:
		u.Log.Info("The proxy spreads updates over a random delay: install saved the settings and kept the active version; the timer moves the host after its delay, or run `teleport-update update --now`.", "active", active, "target", pol.Version, "jitter", pol.Jitter)
		return active, nil
	}
	return pol.Version, nil
}

func skippedTargetError(target *semver.Version) error {
	return fmt.Errorf("%w: the proxy's target %s failed its health check on this host before; run install --version %s to try it again", ErrSkipped, target, target)
}

// enableUnits enables the agent and, on a host with automatic updates on,
// starts the update timer; a disabled host's timer stays off.
func (u *Updater) enableUnits(ctx context.Context, sd install.Systemd, updates bool) error {
	if sd == nil {
		return nil
	}
	if !updates {
		if err := sd.Enable(ctx, AgentUnit); err != nil {
			return fmt.Errorf("enabling %s: %w", AgentUnit, err)
		}
		return nil
	}
	if err := sd.Enable(ctx, UpdaterTimerUnit, AgentUnit); err != nil {
		return fmt.Errorf("enabling %s: %w", UpdaterTimerUnit, err)
	}
	if err := sd.Start(ctx, UpdaterTimerUnit); err != nil {
		return fmt.Errorf("starting %s: %w", UpdaterTimerUnit, err)
	}
	return nil
}

// moveTo fetches, switches and commits target, saving cfg at the end.
// beforeCommit, when set, edits cfg in the same save as the commit. On
// failure cfg.Status records it (and the skip list, after a rollback).
// Moving to the active version only saves cfg, unless that version is
// missing or damaged on disk: then it is fetched and switched to again.
func (u *Updater) moveTo(ctx context.Context, cfg *Config, sd install.Systemd, target *semver.Version, overwrite bool, beforeCommit func(*Config)) error {
	ver := target.String()
	if cfg.Status.Active == ver && u.Tree.Intact(ver) == nil {
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
// A run that leaves the host on an active version it could not repair
// fails with the reason.
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
	s, err := u.attach(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer s.close()

	if cfg.Spec.Pinned {
		target, outcome, err := u.pinnedTarget(cfg)
		res.Target, res.Outcome = cfg.Spec.PinnedVersion, outcome
		if outcome == OutcomePinned {
			res.Target = cfg.Status.Active
		}
		if err != nil || outcome != "" {
			return res, errors.Join(err, s.broken)
		}
		if err := u.moveTo(ctx, cfg, s.sd, target, false, nil); err != nil {
			return res, err
		}
		res.Outcome = OutcomeUpdated
		return res, nil
	}

	target, outcome, jitter, err := u.decide(ctx, cfg, force)
	res.Target = targetString(target)
	if err != nil || outcome != "" {
		res.Outcome = outcome
		return res, errors.Join(err, s.broken)
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
			return res, errors.Join(err, s.broken)
		}
	}
	if err := u.moveTo(ctx, cfg, s.sd, target, false, nil); err != nil {
		return res, err
	}
	res.Outcome = OutcomeUpdated
	return res, nil
}

// pinnedTarget is where a pinned host goes, without asking the proxy: its
// pinned version, unless the host is there already (OutcomePinned) or that
// version failed its health check here (OutcomeSkipped).
func (u *Updater) pinnedTarget(cfg *Config) (*semver.Version, Outcome, error) {
	want := cfg.Spec.PinnedVersion
	switch {
	case want == "" || want == cfg.Status.Active:
		return nil, OutcomePinned, nil
	case cfg.Status.IsSkipped(want):
		u.Log.Warn("The pinned version failed its health check on this host; staying where the host is. Run pin --version to try it again.", "pinned", want)
		return nil, OutcomeSkipped, nil
	}
	target, err := download.ParseVersion(want)
	if err != nil {
		return nil, "", fmt.Errorf("pinned_version in update.yaml: %w", err)
	}
	return target, "", nil
}

// decide asks the proxy and applies decidePolicy. A non-empty outcome
// means there is nothing to do.
func (u *Updater) decide(ctx context.Context, cfg *Config, force bool) (*semver.Version, Outcome, time.Duration, error) {
	pol, err := Find(ctx, u.HTTP, cfg.Spec.Proxy, cfg.Spec.Group, "")
	if err != nil {
		return nil, "", 0, err
	}
	outcome, err := decidePolicy(cfg, pol, force)
	if outcome == OutcomeSkipped {
		u.Log.Warn("The proxy's target failed its health check on this host before; not installing it. Run install --version or pin --version to try it again.", "target", pol.Version)
	}
	if err != nil || outcome != "" {
		return pol.Version, outcome, 0, err
	}
	return pol.Version, "", pol.Jitter, nil
}

// decidePolicy applies the update rules to the proxy's answer: nothing to
// do when the window is closed (unless force), the host runs the target
// already, or the target failed its health check here (the outcome says
// which); ErrDowngrade when the proxy asks for a downgrade the host may
// not take; otherwise move to pol.Version.
func decidePolicy(cfg *Config, pol *Policy, force bool) (Outcome, error) {
	target := pol.Version.String()
	switch {
	case !pol.AutoUpdate && !force:
		return OutcomeWindowClosed, nil
	case target == cfg.Status.Active:
		return OutcomeUpToDate, nil
	case cfg.Status.IsSkipped(target):
		return OutcomeSkipped, nil
	}
	return "", checkDowngrade(cfg, pol.Version)
}

func targetString(v *semver.Version) string {
	if v == nil {
		return ""
	}
	return v.String()
}

// checkDowngrade enforces the downgrade rule: the proxy may move a host down only to
// a version it ran successfully before.
func checkDowngrade(cfg *Config, target *semver.Version) error {
	if cfg.Status.Active == "" {
		return nil
	}
	active, err := download.ParseVersion(cfg.Status.Active)
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
	s, err := u.attach(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.close()
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
	err = u.moveTo(ctx, cfg, s.sd, target, false, func(cfg *Config) {
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
	s, err := u.attach(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.close()
	cfg.Status.removeSkip(target.String())
	err = u.moveTo(ctx, cfg, s.sd, target, false, func(cfg *Config) {
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

// session is one operation's hold on the host, from attach to close.
type session struct {
	// sd is systemd; nil when the host has none.
	sd install.Systemd
	// broken is why the active version is still missing or damaged after
	// repair; nil when it is intact. An operation that moves the host to
	// another version goes on and repairs the host that way; one that
	// leaves the host where it is fails with it.
	broken error
}

func (s *session) close() {
	if s.sd != nil {
		s.sd.Close()
	}
}

// attach connects to systemd (when the host has it) and repairs what an
// interrupted run left. The caller must call close.
func (u *Updater) attach(ctx context.Context, cfg *Config) (*session, error) {
	sd, err := u.systemd(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{sd: sd}
	if s.broken, err = u.reconcile(ctx, cfg, sd); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}
