// This file holds Uninstall, which removes everything teleport-update put
// on the host except the agent's data directory.

package updater

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// Uninstall stops and removes the units, the links, every version and
// update.yaml. The agent's data directory stays. It returns what it
// removed. It needs no readable update.yaml, only update.lock.
func (u *Updater) Uninstall(ctx context.Context) ([]string, error) {
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
	return append(removed, u.removeFiles()...), nil
}

// removeUnits stops, disables and removes the units, then has systemd
// forget them. Stopping and disabling are best effort.
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
	if sd != nil {
		if err := sd.DaemonReload(ctx); err != nil {
			u.Log.Warn("daemon-reload failed.", "error", err)
		}
	}
	return removed, nil
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

// removeFiles removes update.yaml, the teleport-update binary and, last
// and still held, update.lock: a run waiting on the lock then finds no
// update.yaml and stops with ErrNotInstalled.
func (u *Updater) removeFiles() []string {
	var removed []string
	if u.removeState() {
		removed = append(removed, u.Tree.StatePath())
	}
	self := filepath.Join(u.Tree.Root, UpdaterBinPath)
	if err := os.Remove(self); err == nil {
		removed = append(removed, self)
	}
	if err := os.Remove(u.Tree.LockPath()); err == nil {
		removed = append(removed, u.Tree.LockPath())
	}
	return removed
}
