// This file holds the move of an install made by an earlier build, which
// kept its tree in Teleport's data directory (/var/lib/teleport), to the
// updater's own directory. Every operation that takes update.lock runs it
// first, so an old install is never mistaken for a new host (a re-install
// would then ignore its pin or its disabled updates).
//
// The move never stops or restarts the agent: versions are copied (hard
// links where possible), so the running binary keeps its file; links and
// units are pointed at the new tree and systemd reloads the unit files,
// which changes nothing for the running process. Its next restart or
// reload starts the binary from the new path. Only then is the old tree
// removed. Each step is idempotent and the old update.yaml goes last, so a
// run killed at any step leaves a host whose next run finishes the move.

package updater

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/gravitational/teleport-update/internal/safeperm"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// The steps of a move from the earlier tree, in order.
const (
	// StepMigrateVersion: one complete version was copied into the new
	// tree; reported once per version.
	StepMigrateVersion Step = "migrate-version"
	// StepMigrateState: update.yaml is in the new tree.
	StepMigrateState Step = "migrate-state"
	// StepMigrateLink: the links point into the new tree.
	StepMigrateLink Step = "migrate-link"
	// StepMigrateUnits: the unit files name the new tree.
	StepMigrateUnits Step = "migrate-units"
	// StepMigrateReload: systemd loaded the new unit files.
	StepMigrateReload Step = "migrate-reload"
	// StepMigrateRemoveVersion: one version directory of the old tree was
	// removed; reported once per version.
	StepMigrateRemoveVersion Step = "migrate-remove-version"
	// StepMigrateDone: the old update.yaml is gone; the move is finished.
	StepMigrateDone Step = "migrate-done"
)

// MigrationSteps lists every step of a move from the earlier tree, in
// order. The crash tests iterate it as they iterate AllSteps.
var MigrationSteps = []Step{
	StepMigrateVersion, StepMigrateState, StepMigrateLink, StepMigrateUnits,
	StepMigrateReload, StepMigrateRemoveVersion, StepMigrateDone,
}

// migratePhase reports the link, unit and reload steps of the move.
var migratePhase = phase{link: StepMigrateLink, units: StepMigrateUnits, reload: StepMigrateReload}

// migrate moves an install of an earlier build over to the updater's own
// tree when there is one. The caller holds update.lock; migrate takes the
// old tree's lock too, so an old build still running finishes first.
func (u *Updater) migrate(ctx context.Context) error {
	found, err := u.Tree.HasLegacy()
	if err != nil || !found {
		return err
	}
	old := u.Tree.Legacy()
	release, err := install.AcquireLock(ctx, old.LockPath(), u.LockWait)
	if err != nil {
		return fmt.Errorf("moving the earlier install in %s: %w", old.DataDir(), err)
	}
	defer func() { u.logErr(release(), "releasing "+old.LockPath()) }()
	u.Log.Info("Moving the install of an earlier teleport-update to its own directory; the agent keeps running.", "from", old.DataDir(), "to", u.Tree.DataDir())
	if err := u.migrateVersions(ctx); err != nil {
		return fmt.Errorf("moving the earlier install: %w", err)
	}
	cfg, err := u.migrateState()
	if err != nil {
		return fmt.Errorf("moving the earlier install: %w", err)
	}
	if err := u.migrateHost(ctx, cfg.Status.Active); err != nil {
		return fmt.Errorf("moving the earlier install: %w", err)
	}
	if err := u.removeLegacy(); err != nil {
		return fmt.Errorf("moving the earlier install: %w", err)
	}
	u.Log.Info("Moved the earlier install.", "to", u.Tree.DataDir(), "active", cfg.Status.Active)
	return nil
}

// migrateVersions copies every complete version of the old tree.
func (u *Updater) migrateVersions(ctx context.Context) error {
	versions, err := u.Tree.LegacyVersions()
	if err != nil {
		return err
	}
	for _, v := range versions {
		if _, ok, err := u.Tree.Installed(v); err != nil || ok {
			if err != nil {
				return err
			}
			continue
		}
		if err := u.Tree.CopyVersionFrom(u.Tree.Legacy(), v); err != nil {
			return err
		}
		if err := u.label(ctx, v); err != nil {
			return err
		}
		u.step(StepMigrateVersion)
	}
	return nil
}

// migrateState puts the old update.yaml into the new tree, unless one is
// there already: the new tree's state always wins over the old one's, and
// a move killed after this step finds its own copy. It returns the state
// the host now has.
func (u *Updater) migrateState() (*Config, error) {
	cfg, exists, err := LoadConfig(u.Tree.StatePath())
	if err != nil || exists {
		return cfg, err
	}
	oldPath := u.Tree.Legacy().StatePath()
	fi, err := os.Lstat(oldPath)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil // versions without a state: nothing to keep
	}
	if err == nil {
		err = safeperm.Check(oldPath, fi, false)
	}
	if err != nil {
		return nil, err
	}
	if cfg, _, err = LoadConfig(oldPath); err != nil {
		return nil, err
	}
	if err := SaveConfig(u.Tree.StatePath(), cfg); err != nil {
		return nil, err
	}
	u.step(StepMigrateState)
	return cfg, nil
}

// migrateHost points the links and units at the active version in the new
// tree, without restarting the agent.
func (u *Updater) migrateHost(ctx context.Context, active string) error {
	if active == "" {
		return nil
	}
	if err := u.Tree.Intact(active); err != nil {
		// The repair every operation starts with fetches it again and
		// points links and units at it.
		u.Log.Warn("The active version of the earlier install is missing or damaged; it will be fetched again.", "active", active, "error", err)
		return nil
	}
	sd, err := u.systemd(ctx)
	if err != nil {
		return err
	}
	if sd != nil {
		defer sd.Close()
	}
	done, err := u.converge(ctx, sd, convergeTo{version: active, keepNotOurs: true, steps: migratePhase})
	if err == nil && sd != nil && !done.unitsChanged {
		// A run killed after writing the units and before systemd
		// reloaded them left the earlier units loaded.
		err = sd.DaemonReload(ctx)
	}
	return err
}

// removeLegacy removes the old tree's versions, then the rest of it.
func (u *Updater) removeLegacy() error {
	dirs, err := u.Tree.LegacyVersionDirs()
	if err != nil {
		return err
	}
	for _, v := range dirs {
		if err := u.Tree.RemoveLegacyVersion(v); err != nil {
			return err
		}
		u.step(StepMigrateRemoveVersion)
	}
	if _, err := u.Tree.RemoveLegacy(); err != nil {
		return err
	}
	u.step(StepMigrateDone)
	return nil
}

// widenSandbox handles err, the failure to take update.lock, on a host an
// earlier build installed: a run of that build's timer unit, whose sandbox
// (ProtectSystem=strict) lets it write /var/lib/teleport but not the
// updater's own directory, fails with a read-only file system. It then
// rewrites the updater's unit, which lets the next run write both, and has
// systemd reload it; the next run moves the install. err is returned
// either way.
func (u *Updater) widenSandbox(ctx context.Context, err error) error {
	if !errors.Is(err, syscall.EROFS) {
		return err
	}
	if found, ferr := u.Tree.HasLegacy(); ferr != nil || !found {
		return err
	}
	changed, werr := u.Tree.WriteUpdaterUnit(u.Units)
	if werr != nil || !changed {
		return errors.Join(err, werr)
	}
	if sd, serr := u.systemd(ctx); serr == nil && sd != nil {
		u.logErr(sd.DaemonReload(ctx), "daemon-reload")
		sd.Close()
	}
	return fmt.Errorf("%w; the earlier install in %s cannot be moved from inside its timer's sandbox: %s now allows it, and the next run moves it",
		err, u.Tree.Legacy().DataDir(), UpdaterUnit)
}
