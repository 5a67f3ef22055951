// This file holds the self-update: after a run leaves the agent healthy on
// its active version, the teleport-update that version's release carries
// (verified with the rest of the tarball) replaces the one in
// /usr/local/bin, and the new one sets itself up (setup.go) in a child
// process.
//
// The sequence, each step durable before the next:
//  1. the updater in place is copied to updater-backup/ (StepSelfBackup);
//  2. update.yaml records the switch from→to (StepSelfMarker);
//  3. the release's updater is copied over /usr/local/bin/teleport-update
//     (StepSelfBinary);
//  4. the new updater runs `setup`: its units, daemon-reload, update.yaml
//     in its format with the switch cleared (the commit, StepSetupState);
//  5. the backup goes (StepSelfDone).
//
// When setup fails, the backup is copied back (StepSelfRestore) and the
// old updater's own setup writes its units again and records the failure
// (StepSetupBack…).
// A run that finds the switch recorded (a run killed in between) finishes
// it with the setup of whatever is in place when that is the new updater,
// and goes back otherwise. The agent is never touched: its version was
// committed before any of this.

package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/updater/install"
	"github.com/gravitational/teleport-update/internal/version"
)

// The steps of a self-update, in order. Those of setup are reached in the
// child process that runs the new updater (or, going back, the old one).
const (
	// StepSelfBackup: the updater in place is kept in updater-backup/.
	StepSelfBackup Step = "self-backup"
	// StepSelfMarker: update.yaml records the self-update under way.
	StepSelfMarker Step = "self-marker"
	// StepSelfBinary: the release's updater is in /usr/local/bin.
	StepSelfBinary Step = "self-binary"
	// StepSetupUnits: setup wrote its units.
	StepSetupUnits Step = "setup-units"
	// StepSetupReload: systemd loaded them.
	StepSetupReload Step = "setup-reload"
	// StepSetupState: update.yaml records the updater in place, in its
	// format, and no self-update under way (the commit point).
	StepSetupState Step = "setup-state"
	// StepSelfRestore: after a failed setup, the kept updater is back in
	// /usr/local/bin.
	StepSelfRestore Step = "self-restore"
	// StepSetupBackUnits, StepSetupBackReload, StepSetupBackState: the
	// setup steps of the kept updater, back in place, which records the
	// failure.
	StepSetupBackUnits  Step = "setup-back-units"
	StepSetupBackReload Step = "setup-back-reload"
	StepSetupBackState  Step = "setup-back-state"
	// StepSelfDone: the kept updater is removed; the self-update is over.
	StepSelfDone Step = "self-done"
)

// SelfUpdateSteps lists every step of a self-update, in order. The crash
// tests iterate it as they iterate AllSteps.
var SelfUpdateSteps = []Step{
	StepSelfBackup, StepSelfMarker, StepSelfBinary, StepSetupUnits,
	StepSetupReload, StepSetupState, StepSelfRestore, StepSetupBackUnits,
	StepSetupBackReload, StepSetupBackState, StepSelfDone,
}

// setupPhase names the steps of one setup: the new updater's, or the
// kept one's going back.
type setupPhase struct{ units, reload, state Step }

var (
	setupForward = setupPhase{StepSetupUnits, StepSetupReload, StepSetupState}
	setupBack    = setupPhase{StepSetupBackUnits, StepSetupBackReload, StepSetupBackState}
)

// StateFormat is the format of update.yaml this build writes: 1 added
// status.updater. A file without it is format 0.
const StateFormat = 1

// CodeSelfUpdate: the new updater's setup failed; it is not tried again
// until another version comes or an admin runs install.
const CodeSelfUpdate = "self_update"

// Bounds of running an updater binary.
const (
	versionTimeout = 10 * time.Second
	setupTimeout   = 2 * time.Minute
	// maxUpdaterSize bounds the updater binary a self-update copies.
	maxUpdaterSize = 512 << 20
)

// ErrSelfUpdate is the category of self-update failures.
var ErrSelfUpdate = errors.New("self-update failed")

// selfPlan is a self-update to do: the release's updater at path, of
// version to, replacing the one of version from.
type selfPlan struct {
	path, from, to string
}

// selfUpdate replaces the updater in place with the one the active
// version's release carries, when that one is newer. Its failure never
// fails the run: it is recorded and logged, and the updater in place stays.
func (u *Updater) selfUpdate(ctx context.Context, st *store) {
	p, ok := u.selfUpdatePlan(ctx, st.cfg)
	if !ok {
		return
	}
	u.Log.Info("Updating teleport-update itself from the active release.", "from", p.from, "to", p.to, "release", st.cfg.Status.Active)
	if err := u.startSelfSwitch(st, p); err != nil {
		u.Log.Error("Could not start the self-update; the updater in place stays.", "error", err)
		u.logErr(os.RemoveAll(u.Tree.UpdaterBackupDir()), "removing the updater backup")
		return
	}
	u.finishSelfSwitch(ctx, st, SelfSwitch{From: p.from, To: p.to}, u.runSetup(ctx, nil))
}

// selfUpdatePlan says whether and to what the updater replaces itself:
// only with the release's teleport-update of the active version, only
// upwards, never below the version that wrote update.yaml's format, and
// not again to a version whose setup failed.
func (u *Updater) selfUpdatePlan(ctx context.Context, cfg *Config) (selfPlan, bool) {
	us := cfg.Status.Updater
	p := selfPlan{path: u.Tree.ReleaseUpdater(cfg.Status.Active), from: u.installedUpdater(cfg)}
	if cfg.Status.Active == "" || us.Switching != nil || !isExecutable(p.path) {
		return p, false
	}
	to, err := binaryVersion(ctx, p.path)
	if err != nil {
		u.Log.Warn("The release's teleport-update does not run; the updater in place stays.", "release", cfg.Status.Active, "error", err)
		return p, false
	}
	p.to = to
	switch {
	case !newer(p.to, p.from):
		return p, false
	case us.FormatBy != "" && newer(us.FormatBy, p.to):
		u.Log.Warn("The release's teleport-update is older than the one that wrote update.yaml's format; it is not installed.", "release_updater", p.to, "format_by", us.FormatBy)
		return p, false
	case us.Last != nil && !us.Last.Success && us.Last.To == p.to && us.Last.ErrorCode == CodeSelfUpdate:
		u.Log.Debug("The release's teleport-update failed its setup before; the updater in place stays.", "release_updater", p.to)
		return p, false
	}
	return p, true
}

// installedUpdater is the version of the updater in place: as recorded,
// or, before anything was, this binary's.
func (u *Updater) installedUpdater(cfg *Config) string {
	if v := cfg.Status.Updater.Version; v != "" {
		return v
	}
	return u.SelfVersion
}

// startSelfSwitch keeps the updater in place, records the switch and puts
// the release's updater in place.
func (u *Updater) startSelfSwitch(st *store, p selfPlan) error {
	if err := u.copyBinary(u.Tree.UpdaterPath(), u.Tree.UpdaterBackupPath()); err != nil {
		return fmt.Errorf("keeping the updater in place: %w", err)
	}
	u.step(StepSelfBackup)
	sw := &SelfSwitch{From: p.from, To: p.to}
	if err := st.apply("recording the self-update", func(c *Config) { c.Status.Updater.Switching = sw }); err != nil {
		return err
	}
	u.step(StepSelfMarker)
	if err := u.copyBinary(p.path, u.Tree.UpdaterPath()); err != nil {
		return errors.Join(fmt.Errorf("installing the release's updater: %w", err), st.apply("clearing the self-update", func(c *Config) { c.Status.Updater.Switching = nil }))
	}
	u.step(StepSelfBinary)
	return nil
}

// finishSelfSwitch ends the switch sw after the new updater's setup
// returned setupErr: the backup goes when it succeeded; otherwise the kept
// updater comes back and records why. st is read again either way: the
// setup of one of them wrote update.yaml.
func (u *Updater) finishSelfSwitch(ctx context.Context, st *store, sw SelfSwitch, setupErr error) {
	if setupErr == nil {
		u.logErr(os.RemoveAll(u.Tree.UpdaterBackupDir()), "removing the updater backup")
		u.step(StepSelfDone)
		u.Log.Info("teleport-update updated itself.", "from", sw.From, "to", sw.To)
	} else {
		u.Log.Error("The new teleport-update failed its setup; going back to the previous one.", "from", sw.From, "to", sw.To, "error", setupErr)
		u.logErr(u.revertSelf(ctx, sw, CodeSelfUpdate, setupErr), "going back to the previous teleport-update")
	}
	u.logErr(st.reload(), "reading update.yaml after the self-update")
}

// revertSelf puts the kept updater back and has it set itself up again,
// recording the failed switch sw (code, cause).
func (u *Updater) revertSelf(ctx context.Context, sw SelfSwitch, code string, cause error) error {
	if isExecutable(u.Tree.UpdaterBackupPath()) {
		if err := u.copyBinary(u.Tree.UpdaterBackupPath(), u.Tree.UpdaterPath()); err != nil {
			return fmt.Errorf("restoring the previous updater: %w", err)
		}
	}
	u.step(StepSelfRestore)
	failed := &SelfUpdateResult{From: sw.From, To: sw.To, ErrorCode: code, Error: oneLine(cause.Error())}
	if err := u.runSetup(ctx, failed); err != nil {
		return fmt.Errorf("setting up the previous updater again: %w", err)
	}
	u.logErr(os.RemoveAll(u.Tree.UpdaterBackupDir()), "removing the updater backup")
	u.step(StepSelfDone)
	return nil
}

// repairSelf finishes a self-update an earlier run left under way: with
// the new updater's setup when it is in place, otherwise by going back.
func (u *Updater) repairSelf(ctx context.Context, st *store) {
	sw := st.cfg.Status.Updater.Switching
	if sw == nil {
		u.logErr(os.RemoveAll(u.Tree.UpdaterBackupDir()), "removing a stale updater backup")
		return
	}
	u.Log.Warn("An earlier run was interrupted while teleport-update updated itself; finishing it.", "from", sw.From, "to", sw.To)
	if v, err := binaryVersion(ctx, u.Tree.UpdaterPath()); err == nil && v == sw.To {
		u.finishSelfSwitch(ctx, st, *sw, u.runSetup(ctx, nil))
		return
	}
	interrupted := fmt.Errorf("%w: interrupted before the new updater was in place", ErrSelfUpdate)
	u.logErr(u.revertSelf(ctx, *sw, CodeInterrupted, interrupted), "going back to the previous teleport-update")
	u.logErr(st.reload(), "reading update.yaml after the self-update")
}

// runSetup runs `setup` of the updater in place, which holds no lock: this
// run holds update.lock for it. failed, when set, is a failed self-update
// for it to record.
func (u *Updater) runSetup(ctx context.Context, failed *SelfUpdateResult) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	args := []string{"--root", u.Tree.Root, "setup"}
	if failed != nil {
		args = append(args, "--failed-from", failed.From, "--failed-to", failed.To, "--failed-code", failed.ErrorCode, "--failed-error", failed.Error)
	}
	out, err := exec.CommandContext(ctx, u.Tree.UpdaterPath(), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s setup: %w: %s", ErrSelfUpdate, u.Tree.UpdaterPath(), err, lastLine(out))
	}
	return nil
}

// copyBinary copies the executable src over dst atomically (mode 0755).
func (u *Updater) copyBinary(src, dst string) error {
	data, err := capread.File(src, maxUpdaterSize)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return install.WriteFileAtomic(dst, data, 0o755)
}

// versionLine is what `teleport-update version` prints first.
var versionLine = regexp.MustCompile(`^teleport-update v(\S+)`)

// binaryVersion runs `bin version` and returns the version it prints.
func binaryVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", bin, err)
	}
	m := versionLine.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s version: unexpected output %q", bin, lastLine(out))
	}
	if _, err := version.Parse(string(m[1])); err != nil {
		return "", fmt.Errorf("%s version: %w", bin, err)
	}
	return string(m[1]), nil
}

// newer reports whether version a is newer than b; an unparsable b is
// older than anything.
func newer(a, b string) bool {
	va, err := version.Parse(a)
	if err != nil {
		return false
	}
	vb, err := version.Parse(b)
	return err != nil || va.GreaterThan(vb)
}

func isExecutable(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return oneLine(lines[len(lines)-1])
}
