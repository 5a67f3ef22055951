// This file holds what install sets up around the agent so that nothing
// else on the host restarts or updates it behind the updater's back:
// needrestart's drop-in, and Teleport's older updater, whose timer is
// stopped and disabled.

package updater

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// V1UpdaterTimer is the timer of Teleport's older updater (the
// teleport-ent-updater package's teleport-upgrade script).
const V1UpdaterTimer = "teleport-upgrade.timer"

// unitFileDirs are where a unit file of V1UpdaterTimer may be, relative
// to the root: the admin's, and the packages' on merged and split /usr.
var unitFileDirs = []string{"etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"}

// setUpHost writes the needrestart drop-in and turns Teleport's older
// updater off. Neither is worth failing an install for: a failure is
// logged.
func (u *Updater) setUpHost(ctx context.Context, sd install.Systemd) {
	u.logErr(u.Tree.WriteNeedrestart(), "writing "+u.Tree.NeedrestartPath())
	u.stopV1Updater(ctx, sd)
}

// stopV1Updater stops and disables V1UpdaterTimer when the host has it,
// so two updaters never fight over the agent. Without systemd it only
// says what to do.
func (u *Updater) stopV1Updater(ctx context.Context, sd install.Systemd) {
	if !u.hasV1Updater() {
		return
	}
	if sd == nil {
		u.Log.Warn("Teleport's older updater is installed; stop and disable it so that two updaters do not fight: systemctl disable --now "+V1UpdaterTimer, "unit", V1UpdaterTimer)
		return
	}
	st, err := sd.State(ctx, V1UpdaterTimer)
	if err == nil && st.ActiveState == "inactive" && st.UnitFileState != "enabled" {
		return
	}
	u.logErr(sd.Stop(ctx, V1UpdaterTimer), "stopping "+V1UpdaterTimer)
	u.logErr(sd.Disable(ctx, V1UpdaterTimer), "disabling "+V1UpdaterTimer)
	// As systemctl disable does: systemd re-reads the unit files, so that
	// it reports the timer disabled.
	u.logErr(sd.DaemonReload(ctx), "daemon-reload")
	u.Log.Info("Stopped and disabled Teleport's older updater; teleport-update updates the agent now.", "unit", V1UpdaterTimer)
}

// hasV1Updater reports whether a unit file of V1UpdaterTimer exists under
// the root.
func (u *Updater) hasV1Updater() bool {
	for _, dir := range unitFileDirs {
		_, err := os.Lstat(filepath.Join(u.Tree.Root, dir, V1UpdaterTimer))
		if !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

// tearDownHost removes what setUpHost wrote; it returns the paths removed.
// Teleport's older updater stays off: turning it on again is the admin's
// choice.
func (u *Updater) tearDownHost() []string {
	removed, err := u.Tree.RemoveNeedrestart()
	u.logErr(err, "removing "+u.Tree.NeedrestartPath())
	if removed {
		return []string{u.Tree.NeedrestartPath()}
	}
	return nil
}
