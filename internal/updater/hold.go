// This file holds the rule that keeps a switch from starting an agent
// that is not meant to run yet: one with no configuration (a curl | bash
// install often comes before /etc/teleport.yaml), or one the admin left
// stopped and disabled. Starting such an agent would only crash-loop, fail
// its health check and skip-list a good version.

package updater

import (
	"context"
	"slices"

	"github.com/gravitational/teleport-update/internal/teleportconfig"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// Why a switch leaves the agent stopped.
const (
	HeldNoConfig   = "/" + teleportconfig.Rel + " does not exist"
	HeldNotEnabled = "the agent was neither running nor enabled before"
)

// mayStartAgent decides, before a switch changes anything, whether the
// switch may start or restart the agent; reason says why not. The agent
// may start when:
//   - it runs now (whatever else holds: today's behaviour, health check
//     and rollback included);
//   - otherwise, only when root/etc/teleport.yaml exists and the unit is
//     enabled, or, on a first install, when the host has no agent unit at
//     all yet (a fresh host whose admin wrote the configuration first).
//
// Without systemd only the configuration counts. When systemd cannot say
// how the agent is, the agent may start, as before.
func (u *Updater) mayStartAgent(ctx context.Context, sd install.Systemd, first bool) (ok bool, reason string) {
	var st install.UnitState
	if sd != nil {
		var err error
		if st, err = sd.State(ctx, AgentUnit); err != nil {
			return true, ""
		}
		if slices.Contains([]string{"active", "activating", "reloading"}, st.ActiveState) {
			return true, ""
		}
	}
	if !teleportconfig.Exists(u.Tree.Root) {
		return false, HeldNoConfig
	}
	if sd == nil || slices.Contains([]string{"enabled", "enabled-runtime"}, st.UnitFileState) {
		return true, ""
	}
	if first && st.LoadState != "loaded" {
		return true, ""
	}
	return false, HeldNotEnabled
}

// held says that the switch to version left the agent stopped, and why.
func (u *Updater) held(version, reason string) {
	u.Log.Warn("New version is installed; the agent was not started.", "version", version, "reason", reason,
		"next", "write /etc/teleport.yaml (teleport node configure), then: systemctl enable --now teleport")
	if u.AgentHeld != nil {
		u.AgentHeld(reason)
	}
}

// configMissing reports whether the agent has no configuration; a failed
// health check is then not the version's fault.
func (u *Updater) configMissing() bool {
	return !teleportconfig.Exists(u.Tree.Root)
}
