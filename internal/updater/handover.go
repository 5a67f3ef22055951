// This file holds how converge moves a running agent to another version:
// by a reload when it can, so open sessions survive, and by a restart when
// it cannot. On a reload (SIGHUP) the agent re-executes itself by the link,
// which already points at the new version, hands its listeners to the new
// process, and lets the old one finish its sessions; the health check then
// follows the new process through the PID file.

package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// How converge moves the agent to c.version.
type handover int

const (
	// byReload: systemctl reload, then follow the new process.
	byReload handover = iota
	// byRestart: systemctl restart; open sessions end.
	byRestart
	// alreadyThere: the agent's only process already runs c.version
	// (e.g. the new version never took over): nothing to signal.
	alreadyThere
)

// agentService returns the [Service] lines of the agent unit on disk; nil
// when there is none.
func (u *Updater) agentService() []string {
	data, err := os.ReadFile(filepath.Join(u.Tree.UnitDir(), AgentUnit))
	if err != nil {
		return nil
	}
	return install.ServiceSection(data)
}

// procs is the process table the handover reads.
func (u *Updater) procs() install.Processes {
	if u.Procs != nil {
		return u.Procs
	}
	return install.ProcFS{}
}

// agentBinary is version's teleport binary.
func (u *Updater) agentBinary(version string) string {
	return filepath.Join(u.Tree.VersionDir(version), "bin", "teleport")
}

// switchAgent moves the agent, whose links and units already name
// c.version, onto c.version, and with c.check checks its health. before
// is the agent unit's [Service] section before converge wrote the units.
func (u *Updater) switchAgent(ctx context.Context, sd install.Systemd, c convergeTo, before []string) error {
	st, err := sd.State(ctx, AgentUnit)
	if err != nil {
		return fmt.Errorf("switching %s to %s: %w", AgentUnit, c.version, err)
	}
	how, why := u.chooseHandover(c, st, before)
	switch how {
	case alreadyThere:
		u.Log.Info("The agent already runs this version; not signalling it.", "version", c.version, "pid", st.MainPID)
		u.step(c.steps.restart)
		return u.checkRestarted(ctx, sd, c)
	case byRestart:
		u.Log.Info("Restarting the agent; its open sessions end.", "version", c.version, "reason", why)
		return u.restartOn(ctx, sd, c)
	}
	return u.reloadOn(ctx, sd, c, st)
}

// chooseHandover decides how to move the agent in state st to c.version,
// and says why when it must restart. A reload applies only to a running
// agent whose unit, as it will run the new process, is the unit it was
// started with: the same [Service] section on disk before and after this
// converge, and the command line of the running process is the one the
// unit now gives (an agent started by an older unit, without a PID file or
// not through the link, cannot hand over). The way back from a failed
// switch, and a repair, restart unless nothing needs to move: the process
// running then may be the broken version.
func (u *Updater) chooseHandover(c convergeTo, st install.UnitState, before []string) (handover, string) {
	if st.ActiveState != "active" || st.MainPID == 0 {
		return byRestart, fmt.Sprintf("the agent is not running (%s/%s)", st.ActiveState, st.SubState)
	}
	if !slices.Equal(before, u.agentService()) {
		return byRestart, "the agent unit's [Service] section changed"
	}
	opts := u.Units
	opts.Version = c.version
	want := install.AgentExecStart(opts)
	got, err := u.procs().Cmdline(int(st.MainPID))
	if err != nil {
		return byRestart, fmt.Sprintf("cannot read the agent's command line: %v", err)
	}
	switch {
	case !slices.Equal(got, want):
		return byRestart, fmt.Sprintf("the agent was started with %q, not %q", got, want)
	case u.onlyProcessRuns(int(st.MainPID), c.version):
		return alreadyThere, ""
	case c.resetFailed:
		return byRestart, "going back from a version that may still run"
	}
	return byReload, ""
}

// onlyProcessRuns reports whether the agent's main process pid runs
// version and no other process took over from it (the PID file names it).
func (u *Updater) onlyProcessRuns(pid int, version string) bool {
	named, err := install.ReadPIDFile(u.Tree.PIDFile())
	if err != nil || named != pid {
		return false
	}
	same, err := install.Runs(u.procs(), pid, u.agentBinary(version))
	return err == nil && same
}

// reloadOn reloads the agent, which hands over to a process of c.version,
// and with c.check follows that process through its health check. A
// reload systemd refuses falls back to a restart.
func (u *Updater) reloadOn(ctx context.Context, sd install.Systemd, c convergeTo, before install.UnitState) error {
	if err := sd.Reload(ctx, AgentUnit); err != nil {
		if ctx.Err() != nil || !errors.Is(err, install.ErrJobFailed) {
			return fmt.Errorf("reloading %s on %s: %w", AgentUnit, c.version, err)
		}
		u.Log.Warn("The agent refused the reload; restarting it instead. Its open sessions end.", "version", c.version, "error", err)
		return u.restartOn(ctx, sd, c)
	}
	u.Log.Info("Reloaded the agent; following the process of the new version.", "version", c.version, "old_pid", before.MainPID)
	u.step(c.steps.restart)
	if !c.check {
		return nil
	}
	check := install.ReloadCheck{Unit: AgentUnit, PIDFile: u.Tree.PIDFile(), Binary: u.agentBinary(c.version),
		Before: before, Procs: u.procs(), Log: u.Log}
	if err := install.CheckReloadHealth(ctx, sd, check, u.Health); err != nil {
		return err
	}
	return u.execCheck(ctx, c.version)
}
