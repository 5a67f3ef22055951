// This file holds the steps of an update: the typed names of the points
// right after each durable change, in the one list (AllSteps) that the
// crash tests iterate, and the one hook (Updater.AfterStep) that reports
// them.

package updater

import "github.com/gravitational/teleport-update/internal/updater/install"

// Step names a point of an update right after a durable change: a file
// renamed, a link swapped, systemd reloaded, update.yaml written. A run
// killed at any step must leave a host that works and that the next run
// finishes.
type Step string

// The steps, in the order an update reaches them. A switch to a healthy
// version goes from StepDownload to StepState; one whose version fails its
// health check goes from StepDownload to StepRevert and, when there is a
// previous version, on to StepPreviousRestart. StepUnpack comes first:
// the release is unpacked into staging while it is downloaded.
const (
	// StepUnpack: the first file of the release was unpacked into its
	// private staging directory while the tarball streams in; its hash is
	// not known yet, so nothing outside staging refers to it.
	StepUnpack Step = install.StepUnpack
	// StepDownload: every byte of the tarball arrived and its SHA-256 is
	// the signed one; its content is unpacked in staging.
	StepDownload Step = "download"
	// StepRename: the extracted version was renamed into versions/.
	StepRename Step = install.StepRename
	// StepExtract: the version is installed and marked complete.
	StepExtract Step = "extract"
	// StepLinkBinary: one binary's link points at the new version; the
	// others may not yet. It is reported once per binary.
	StepLinkBinary Step = install.StepLinkBinary
	// StepLink: every link points at the new version.
	StepLink Step = "link"
	// StepUnits: the unit files name the new version.
	StepUnits Step = "units"
	// StepReload: systemd loaded the new unit files.
	StepReload Step = "reload"
	// StepRestart: the agent was moved to the new version, by a reload
	// (the old process may still be finishing its sessions) or a restart;
	// its health check is under way.
	StepRestart Step = "restart"
	// StepState: update.yaml records the new version (the commit point).
	StepState Step = "state"
	// StepRevert: after a failed switch, the links and unit files are as
	// they were before it.
	StepRevert Step = "revert"
	// StepPreviousReload: systemd loaded the previous unit files again.
	StepPreviousReload Step = "previous-reload"
	// StepPreviousRestart: systemd restarted the agent on the previous
	// version (or found it still running there, when the new version
	// never took over); its health check is under way.
	StepPreviousRestart Step = "previous-restart"
)

// AllSteps lists every step an update reports, in order.
var AllSteps = []Step{
	StepUnpack, StepDownload, StepRename, StepExtract, StepLinkBinary, StepLink,
	StepUnits, StepReload, StepRestart, StepState,
	StepRevert, StepPreviousReload, StepPreviousRestart,
}

// NeedsSystemd reports whether s is reached only on a host with systemd;
// the other steps are reached on every host.
func (s Step) NeedsSystemd() bool {
	switch s {
	case StepUnits, StepReload, StepRestart, StepPreviousReload, StepPreviousRestart,
		StepMigrateUnits, StepMigrateReload, StepSetupReload, StepSetupBackReload:
		return true
	}
	return false
}

// step reports s to the hook; the zero Step is not reported.
func (u *Updater) step(s Step) {
	if s == "" {
		return
	}
	u.run.add(string(s), RunStepOK)
	if u.AfterStep != nil {
		u.AfterStep(s)
	}
}

// tree returns the install tree, reporting the tree's own steps
// (StepRename, StepLinkBinary) to AfterStep when report is set. It is a
// copy, so the tree the caller gave is never changed.
func (u *Updater) tree(report bool) *install.Tree {
	t := *u.Tree
	t.AfterStep = nil
	if report && u.AfterStep != nil {
		t.AfterStep = func(s string) { u.AfterStep(Step(s)) }
	}
	return &t
}
