// This file holds converge, the one way to make this host run a version:
// links, unit files, daemon-reload, reload or restart, health check. It is
// idempotent (a step already done changes nothing), and a switch, the way
// back from a failed switch and the repair after a crash all call it; they
// differ only in the options below.

package updater

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// convergeTo says which version converge brings the host to, and how.
type convergeTo struct {
	version string
	// overwrite replaces files that are not ours in the way of a link or
	// of a unit (an admin's unit is kept in the unit backup).
	overwrite bool
	// keepNotOurs leaves such files alone with a warning instead of
	// failing (a repair or the way back must not stop at them).
	keepNotOurs bool
	// restart moves the running agent to version (by a reload when it
	// can, see handover.go); systemd reloads the units first.
	restart bool
	// resetFailed clears the agent unit's failed state before the restart.
	resetFailed bool
	// check health-checks the agent after the restart (without systemd,
	// checks that the binary runs).
	check bool
	// steps names the steps reported on the way.
	steps phase
	// fips: version is a FIPS build; its unit runs the agent with --fips.
	fips bool
}

// phase names the steps of one use of converge; a zero Step is not
// reported (nor are the install tree's steps without a link step).
type phase struct{ link, units, reload, restart Step }

var (
	// switchPhase: the way to a new version.
	switchPhase = phase{link: StepLink, units: StepUnits, reload: StepReload, restart: StepRestart}
	// backPhase: the way back after a failed switch. Its links and units
	// were already put back by the revert (StepRevert), so converge finds
	// them in place and reports only systemd's steps.
	backPhase = phase{reload: StepPreviousReload, restart: StepPreviousRestart}
	// The repair after a crash reports no steps: it is what runs after a
	// kill, and the crash tests check what it leaves.
)

// converged is what converge changed: undoLinks and undoUnits restore the
// files exactly as they were, including files that were not ours; nil
// when converge did not get that far.
type converged struct {
	undoLinks, undoUnits func() error
	unitsChanged         bool
}

// converge makes the host run c.version. It stops at the first failure
// and says what it changed until then: when the links fail, nothing.
func (u *Updater) converge(ctx context.Context, sd install.Systemd, c convergeTo) (converged, error) {
	var done converged
	undo, err := u.linkTo(c)
	if err != nil {
		return done, err
	}
	done.undoLinks = undo
	u.step(c.steps.link)
	if sd == nil {
		if !c.check {
			return done, nil
		}
		u.Log.Warn("No systemd on this host; units were not touched. Checking the binary instead.", "version", c.version)
		return done, u.execCheck(ctx, c.version)
	}
	before := u.agentService()
	done.undoUnits, done.unitsChanged, err = u.loadUnits(ctx, sd, c)
	if err != nil || !c.restart {
		return done, err
	}
	return done, u.switchAgent(ctx, sd, c, before)
}

// linkTo points the links at c.version (Link names the version in its
// errors).
func (u *Updater) linkTo(c convergeTo) (func() error, error) {
	undo, err := u.tree(c.steps.link != "").Link(c.version, c.overwrite)
	if c.keepNotOurs && errors.Is(err, install.ErrNotOurs) {
		u.Log.Warn("A file teleport-update did not create is in the way of a link; leaving it.", "error", err)
		return func() error { return nil }, nil
	}
	return undo, err
}

// loadUnits writes the units of c.version and has systemd load them when
// they changed or the agent is about to restart.
func (u *Updater) loadUnits(ctx context.Context, sd install.Systemd, c convergeTo) (undo func() error, changed bool, err error) {
	opts := u.Units
	opts.FIPS = c.fips
	opts.Version = c.version
	opts.Example = u.Tree.ReleaseUnit(c.version)
	undo, changed, err = u.Tree.WriteUnitsOver(opts, c.overwrite)
	if c.keepNotOurs && errors.Is(err, install.ErrNotOurs) {
		u.Log.Warn("A unit file teleport-update did not create is in the way; leaving it.", "error", err)
		return func() error { return nil }, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	u.step(c.steps.units)
	if changed || c.restart {
		if err := sd.DaemonReload(ctx); err != nil {
			return undo, changed, fmt.Errorf("daemon-reload: %w", err)
		}
	}
	if c.restart && c.resetFailed {
		u.logErr(sd.ResetFailed(ctx, AgentUnit), "reset-failed "+AgentUnit)
	}
	u.step(c.steps.reload)
	return undo, changed, nil
}

// restartOn restarts the agent on c.version and, with c.check, checks its
// health. A restart job that systemd ran and that failed is unhealthy.
func (u *Updater) restartOn(ctx context.Context, sd install.Systemd, c convergeTo) error {
	if err := sd.Restart(ctx, AgentUnit); err != nil {
		if errors.Is(err, install.ErrJobFailed) {
			return fmt.Errorf("%w: restarting %s on %s: %w", install.ErrUnhealthy, AgentUnit, c.version, err)
		}
		return fmt.Errorf("restarting %s on %s: %w", AgentUnit, c.version, err)
	}
	u.step(c.steps.restart)
	return u.checkRestarted(ctx, sd, c)
}

// checkRestarted, with c.check, checks the health of the agent's main
// process on c.version.
func (u *Updater) checkRestarted(ctx context.Context, sd install.Systemd, c convergeTo) error {
	if !c.check {
		return nil
	}
	if err := install.CheckUnitHealth(ctx, sd, AgentUnit, u.Health); err != nil {
		return err
	}
	return u.execCheck(ctx, c.version)
}

// execCheck checks that version's teleport runs and prints its version.
func (u *Updater) execCheck(ctx context.Context, version string) error {
	bin := filepath.Join(u.Tree.VersionDir(version), "bin", "teleport")
	err := install.CheckExec(ctx, bin, version)
	if err != nil && ctx.Err() != nil {
		// Stopped, not unhealthy.
		return fmt.Errorf("checking %s: %w", version, ctx.Err())
	}
	return err
}

// agentActive reports whether systemd runs the agent unit.
func agentActive(ctx context.Context, sd install.Systemd) bool {
	if sd == nil {
		return false
	}
	st, err := sd.State(ctx, AgentUnit)
	return err == nil && st.ActiveState == "active"
}
