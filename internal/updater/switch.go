// This file holds the switch to a fetched version: the switch marker,
// converge to the new version and, when that fails, the way back (the
// revert of the files, then converge to the previous version) and the
// decision whether the failure is the new version's fault.

package updater

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// rollbackBudget bounds the way back, which runs to completion even when
// the run itself is being stopped.
const rollbackBudget = 2 * time.Minute

// Bounds of asking systemd whether it is shutting down after a failed
// health check.
const (
	shutdownQueryTimeout = 5 * time.Second
	shutdownQueryRetry   = 2 * time.Second
)

// failedSwitch is a switch that did not reach a healthy target.
type failedSwitch struct {
	target, prev string
	// prevAgentActive: an agent ran before a first install.
	prevAgentActive bool
	// started: the switch (re)started the agent, with its configuration.
	started bool
	done    converged
	err     error
}

// switchTo makes target, fetched already, the running version. The switch
// marker is saved first, so a run killed midway is repaired by the next.
// When target fails its health check the host goes back to the previous
// version, target is skip-listed and the error wraps ErrRolledBack
// (ErrHealth when there was nothing to go back to). When the run is
// interrupted, or the switch fails for a reason that is not the version's
// fault (systemd, D-Bus), the host goes back and the error wraps ErrSwitch.
// settled says the host is on the active version with no switch under
// way; otherwise the switch marker stays for the next run's repair.
func (u *Updater) switchTo(ctx context.Context, st *store, sd install.Systemd, target string, overwrite bool) (settled bool, err error) {
	f := failedSwitch{target: target, prev: st.cfg.Status.Active}
	f.prevAgentActive = f.prev == "" && agentActive(ctx, sd)
	start, why := u.mayStartAgent(ctx, sd, f.prev == "")
	f.started = start && sd != nil
	if err := st.StartSwitch(target); err != nil {
		return false, err
	}
	f.done, f.err = u.converge(ctx, sd, convergeTo{version: target, overwrite: overwrite, restart: start, check: start, steps: switchPhase})
	if f.err == nil && !start {
		// The agent stays stopped: the binary must still run.
		if f.err = u.execCheck(ctx, target); f.err == nil {
			u.held(target, why)
			return true, nil
		}
	}
	switch {
	case f.err == nil:
		u.Log.Info("New version is healthy.", "version", target)
		return true, nil
	case f.done.undoLinks == nil:
		// The links failed, and Link changes nothing when it fails.
		return true, f.err
	}
	return u.goBack(ctx, st, sd, f)
}

// goBack puts the host back after a failed switch: the files as they were
// (including files that were not ours), then converge to the previous
// version, or, after a first install, the agent that ran before.
func (u *Updater) goBack(ctx context.Context, st *store, sd install.Systemd, f failedSwitch) (settled bool, err error) {
	// The way back must finish even when this run is being stopped.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackBudget)
	defer cancel()
	atFault := u.atFault(ctx, rctx, sd, f)
	var saveErr error
	if atFault {
		u.Log.Error("New version failed its health check; rolling back.", "version", f.target, "error", f.err, "previous", f.prev)
		saveErr = st.Skip(f.target)
	} else {
		u.Log.Error("Switch did not complete; going back.", "version", f.target, "error", f.err, "interrupted", ctx.Err() != nil, "previous", f.prev)
	}
	u.logErr(undo(f.done.undoUnits), "restoring the previous units")
	u.logErr(undo(f.done.undoLinks), "restoring the previous links")
	u.step(StepRevert)
	if f.prev == "" {
		u.restoreAgentBefore(rctx, sd, f.prevAgentActive)
		return true, errors.Join(f.firstInstallError(atFault), saveErr)
	}
	back := convergeTo{version: f.prev, keepNotOurs: true, restart: true, resetFailed: true, check: true, steps: backPhase}
	if _, err := u.converge(rctx, sd, back); err != nil {
		return false, errors.Join(f.notBackError(err), saveErr)
	}
	if atFault {
		u.Log.Info("Rolled back; the previous version is healthy.", "version", f.prev, "skipped", f.target)
	} else {
		u.Log.Info("Went back to the previous version; it is healthy.", "version", f.prev)
	}
	return true, errors.Join(f.backError(atFault), saveErr)
}

func undo(f func() error) error {
	if f == nil {
		return nil
	}
	return f()
}

// restoreAgentBefore puts the agent back as it was before a first install
// that failed: systemd loads the unit files the revert restored, and an
// agent that ran before (e.g. from a package) runs again rather than
// leave the host without; otherwise the agent stays stopped.
func (u *Updater) restoreAgentBefore(ctx context.Context, sd install.Systemd, wasActive bool) {
	if sd == nil {
		return
	}
	u.logErr(sd.DaemonReload(ctx), "daemon-reload")
	u.logErr(sd.ResetFailed(ctx, AgentUnit), "reset-failed "+AgentUnit)
	if wasActive {
		u.logErr(sd.Restart(ctx, AgentUnit), "restarting the previous "+AgentUnit)
	} else {
		u.logErr(sd.Stop(ctx, AgentUnit), "stopping "+AgentUnit)
	}
}

func (f failedSwitch) firstInstallError(atFault bool) error {
	if atFault {
		return fmt.Errorf("%w: %s: %w", ErrHealth, f.target, f.err)
	}
	return fmt.Errorf("%w: installing %s: %w", ErrSwitch, f.target, f.err)
}

func (f failedSwitch) backError(atFault bool) error {
	if atFault {
		return fmt.Errorf("%w to %s: %s failed its health check: %w", ErrRolledBack, f.prev, f.target, f.err)
	}
	return fmt.Errorf("%w (%s to %s); went back to %s: %w", ErrSwitch, f.prev, f.target, f.prev, f.err)
}

func (f failedSwitch) notBackError(err error) error {
	if errors.Is(err, install.ErrUnhealthy) {
		return fmt.Errorf("went back to %s, but it is not healthy either: %w (switch to %s: %v)", f.prev, err, f.target, f.err)
	}
	return fmt.Errorf("going back to %s: %w (switch to %s: %v)", f.prev, err, f.target, f.err)
}

// atFault reports whether the failed switch is the new version's fault:
// it failed its health check, the run was not stopped, and no shutdown
// excuses it.
func (u *Updater) atFault(ctx, rctx context.Context, sd install.Systemd, f failedSwitch) bool {
	if ctx.Err() != nil || !errors.Is(f.err, install.ErrUnhealthy) {
		return false
	}
	if f.started && u.configMissing() {
		u.Log.Warn("The agent has no configuration; its failed health check is not the new version's fault.", "version", f.target)
		return false
	}
	return sd == nil || !u.shutdownExcuses(ctx, rctx, sd, f.target)
}

// shutdownExcuses reports whether a failed health check of target is
// excused by a shutdown, which stops the agent, maybe before this run gets
// its SIGTERM. It is when systemd says it is shutting down, or cannot say
// (a shutdown also stops the D-Bus daemon) and this run is stopped before a
// second try. When systemd cannot say and the run goes on, the health check
// counts, so a broken version is not retried on every run.
func (u *Updater) shutdownExcuses(ctx, rctx context.Context, sd install.Systemd, target string) bool {
	down, err := shuttingDown(rctx, sd)
	if err != nil {
		select {
		case <-ctx.Done():
		case <-time.After(shutdownQueryRetry):
		}
		if ctx.Err() != nil {
			u.Log.Warn("This run was stopped while asking systemd whether the system is shutting down; the failed health check is not the new version's fault.", "version", target, "error", err)
			return true
		}
		down, err = shuttingDown(rctx, sd)
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

func shuttingDown(ctx context.Context, sd install.Systemd) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, shutdownQueryTimeout)
	defer cancel()
	return sd.ShuttingDown(ctx)
}
