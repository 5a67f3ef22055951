// This file holds Uninstall, which removes everything teleport-update put
// on the host except the agent's data directory, and hands the host back
// to what ran the agent before: an admin's own unit, or a package install.

package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// ErrAgentActive: uninstall was asked for while the agent is active or
// enabled, without force.
var ErrAgentActive = errors.New("the agent is active or enabled")

// agentUse is how the host used the agent unit when uninstall began.
type agentUse struct{ active, enabled bool }

// Uninstall stops and removes the units, the links, every version and
// update.yaml. The agent's data directory (/var/lib/teleport) stays. It
// returns what it removed. It needs no readable update.yaml, only
// update.lock.
//
// While the agent is active or enabled it refuses with ErrAgentActive
// unless force: uninstalling stops it. An admin's unit that install
// replaced is put back. When a package install of Teleport is on the host,
// the host is handed back to it: once our unit is gone, the packaged unit
// is enabled and started as ours was.
func (u *Updater) Uninstall(ctx context.Context, force bool) ([]string, error) {
	unlock, err := u.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	sd, err := u.systemd(ctx)
	if err != nil {
		return nil, err
	}
	if sd != nil {
		defer sd.Close()
	}
	was := u.agentUse(ctx, sd)
	if (was.active || was.enabled) && !force {
		return nil, u.refuseUninstall(was)
	}
	removed, err := u.removeUnits(ctx, sd)
	if err != nil {
		return removed, err
	}
	links, err := u.Tree.Unlink() // Unlink names itself in its errors
	removed = append(removed, links...)
	if err != nil {
		return removed, err
	}
	removed = append(removed, u.tearDownHost()...)
	versions, err := u.removeVersions()
	removed = append(removed, versions...)
	if err != nil {
		return removed, err
	}
	u.handBack(ctx, sd, was)
	return append(removed, u.removeFiles()...), nil
}

// agentUse says whether the agent unit is active (systemd says so) and
// enabled (a .wants link in /etc/systemd/system).
func (u *Updater) agentUse(ctx context.Context, sd install.Systemd) agentUse {
	was := agentUse{enabled: u.Tree.UnitEnabled(AgentUnit)}
	if sd != nil {
		st, err := sd.State(ctx, AgentUnit)
		was.active = err == nil && st.ActiveState != "inactive" && st.ActiveState != "failed" && st.ActiveState != ""
	}
	return was
}

// refuseUninstall says why uninstall stops and what to do.
func (u *Updater) refuseUninstall(was agentUse) error {
	what := "enabled"
	switch {
	case was.active && was.enabled:
		what = "active and enabled"
	case was.active:
		what = "active"
	}
	next := "uninstalling stops it"
	if _, ok := u.Tree.PackagedAgent(); ok {
		next = "with --force the packaged Teleport (/usr/bin/teleport) takes over"
	}
	return fmt.Errorf("%w: %s is %s and %s; stop and disable it first (systemctl disable --now %s) or run uninstall --force",
		ErrAgentActive, AgentUnit, what, next, AgentUnit)
}

// removeUnits stops, disables and removes the units, puts back an admin's
// units that install replaced, then has systemd reload. Stopping and
// disabling are best effort.
func (u *Updater) removeUnits(ctx context.Context, sd install.Systemd) ([]string, error) {
	if sd != nil {
		for _, unit := range []string{UpdaterTimerUnit, AgentUnit} {
			if err := sd.Stop(ctx, unit); err != nil {
				u.Log.Warn("Failed to stop unit.", "unit", unit, "error", err)
			}
			if err := sd.Disable(ctx, unit); err != nil {
				u.Log.Warn("Failed to disable unit.", "unit", unit, "error", err)
			}
		}
	}
	removed, err := u.Tree.RemoveUnits()
	if err != nil {
		return removed, fmt.Errorf("removing units: %w", err)
	}
	restored, err := u.Tree.RestoreUnitBackups()
	for _, p := range restored {
		u.Log.Info("Restored the unit file install had replaced.", "path", p)
	}
	if err != nil {
		return removed, err
	}
	if sd != nil {
		u.logErr(sd.DaemonReload(ctx), "daemon-reload")
	}
	return removed, nil
}

// handBack gives the host back to a package install of Teleport: its unit
// is enabled and started when ours was. Failures are logged: our part is
// gone either way.
func (u *Updater) handBack(ctx context.Context, sd install.Systemd, was agentUse) {
	u.relinkPackage()
	unit, ok := u.Tree.PackagedAgent()
	if !ok || sd == nil {
		return
	}
	u.Log.Info("Handing the host back to the packaged Teleport.", "unit", unit)
	if was.enabled {
		u.logErr(sd.Enable(ctx, AgentUnit), "enabling the packaged "+AgentUnit)
	}
	if was.active {
		u.logErr(sd.Start(ctx, AgentUnit), "starting the packaged "+AgentUnit)
	}
}

// relinkPackage links the binaries of a package install of Teleport in
// /opt/teleport/system/bin again (link-package), now that ours are gone.
func (u *Updater) relinkPackage() {
	if _, err := os.Stat(u.Tree.PackageBinDir()); err != nil {
		return
	}
	linked, err := u.Tree.LinkPackage()
	u.logErr(err, "linking the package install of Teleport")
	if len(linked) > 0 {
		u.Log.Info("Linked the package install of Teleport again.", "links", len(linked))
	}
}

// removeVersions removes leftovers and every version directory.
func (u *Updater) removeVersions() ([]string, error) {
	if _, err := u.Tree.CleanLeftovers(); err != nil {
		return nil, err
	}
	versions, err := u.Tree.Versions()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, v := range versions {
		if err := u.Tree.RemoveVersion(v); err != nil {
			return removed, fmt.Errorf("removing version %s: %w", v, err)
		}
		removed = append(removed, u.Tree.VersionDir(v))
	}
	return removed, nil
}

// removeFiles removes update.yaml, the census host key (a reinstalled
// host has a new host id, from update.yaml's new salt, and a new key), the
// teleport-update binary and, last and still held, update.lock: a run
// waiting on the lock then finds no update.yaml and stops with
// ErrNotInstalled. The data directory goes too when nothing else is left
// in it.
func (u *Updater) removeFiles() []string {
	var removed []string
	if u.removeState() {
		removed = append(removed, u.Tree.StatePath())
	}
	for _, p := range []string{u.Tree.HostKeyPath(), filepath.Join(u.Tree.Root, UpdaterBinPath)} {
		if err := os.Remove(p); err == nil {
			removed = append(removed, p)
		}
	}
	if err := os.Remove(u.Tree.LockPath()); err == nil {
		removed = append(removed, u.Tree.LockPath())
	}
	_ = os.RemoveAll(u.Tree.UpdaterBackupDir())
	_ = os.Remove(u.Tree.VersionsDir())
	_ = os.Remove(u.Tree.StagingDir())
	if err := os.Remove(u.Tree.DataDir()); err == nil {
		removed = append(removed, u.Tree.DataDir())
	}
	return removed
}
