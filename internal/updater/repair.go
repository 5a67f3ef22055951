// This file holds the repair every operation starts with (attach): it
// puts the host back to what update.yaml records after an interrupted
// run, through the same converge a switch uses.

package updater

import (
	"context"
	"errors"
	"fmt"

	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

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
		s.sd = nil
	}
}

// attach connects to systemd (when the host has it) and repairs what an
// interrupted run left. The caller closes s.
func (u *Updater) attach(ctx context.Context, st *store, s *session) error {
	sd, err := u.systemd(ctx)
	if err != nil {
		return err
	}
	s.sd = sd
	s.broken, err = u.reconcile(ctx, st, sd)
	return err
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
func (u *Updater) reconcile(ctx context.Context, st *store, sd install.Systemd) (broken, err error) {
	if err := u.cleanLeftovers(); err != nil {
		return nil, err
	}
	active, switching := st.cfg.Status.Active, st.cfg.Status.Switching
	if switching != "" {
		u.Log.Warn("An earlier run was interrupted while switching versions; restoring the active version.", "active", active, "switching_to", switching)
	}
	if active == "" {
		if err := u.undoFirstInstall(ctx, sd, switching != ""); err != nil {
			return nil, err
		}
		return nil, st.ClearSwitching()
	}
	if broken := u.repairActive(ctx, st.cfg); broken != nil {
		u.Log.Error("The active version is missing or damaged and could not be fetched again; links and units are left as they are. Moving to another version (update, install --version, pin --version, rollback) can still repair the host.", "active", active, "error", broken)
		return broken, nil
	}
	if err := u.warnLinks(active); err != nil {
		return nil, err
	}
	// An agent the switch was not to start stays stopped.
	restart := switching != ""
	if restart {
		restart, _ = u.mayStartAgent(ctx, sd, false)
	}
	done, err := u.converge(ctx, sd, convergeTo{version: active, keepNotOurs: true, restart: restart, resetFailed: true})
	if err != nil {
		return nil, fmt.Errorf("restoring the host to %s: %w", active, err)
	}
	if done.unitsChanged {
		u.Log.Info("Rewrote the systemd units for the active version.", "active", active)
	}
	return nil, st.ClearSwitching()
}

// cleanLeftovers removes staging and incomplete version directories.
func (u *Updater) cleanLeftovers() error {
	removed, err := u.Tree.CleanLeftovers()
	if err != nil {
		return fmt.Errorf("cleaning up after an earlier run: %w", err)
	}
	for _, r := range removed {
		u.Log.Info("Removed leftovers of an interrupted run.", "path", r)
	}
	return nil
}

// warnLinks says when the links do not all point at the active version.
func (u *Updater) warnLinks(active string) error {
	linked, err := u.Tree.LinkedVersions()
	if err != nil {
		return fmt.Errorf("reading links: %w", err)
	}
	if len(linked) != 1 || linked[0] != active {
		u.Log.Warn("Links do not match the active version; restoring them.", "active", active, "linked", linked)
	}
	return nil
}

// undoFirstInstall removes what an interrupted first install left: its
// links and, when it was switching, its units and the agent it started.
func (u *Updater) undoFirstInstall(ctx context.Context, sd install.Systemd, switching bool) error {
	if linked, err := u.Tree.LinkedVersion(); err != nil {
		return fmt.Errorf("reading links: %w", err)
	} else if linked != "" {
		u.Log.Warn("An interrupted first install left links behind; removing them.", "linked", linked)
		if _, err := u.Tree.Unlink(); err != nil {
			return fmt.Errorf("removing links of an interrupted install: %w", err)
		}
	}
	if !switching || sd == nil {
		return nil
	}
	if _, err := u.Tree.RemoveUnits(); err != nil {
		u.Log.Warn("Failed to remove the units of an interrupted first install.", "error", err)
	}
	u.logErr(sd.DaemonReload(ctx), "daemon-reload")
	u.logErr(sd.Stop(ctx, AgentUnit), "stopping "+AgentUnit)
	u.logErr(sd.ResetFailed(ctx, AgentUnit), "reset-failed "+AgentUnit)
	return nil
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
	if err := u.fetch(ctx, cfg.Spec.BaseURL, v); err != nil {
		return fmt.Errorf("repairing the active version %s: %w", active, err)
	}
	return nil
}
