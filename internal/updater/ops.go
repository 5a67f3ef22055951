// This file holds the public operations that move or hold the host (Update,
// Rollback, Pin) or change a setting (Unpin, SetEnabled, SetCensus), and
// moveTo, the fetch–switch–commit sequence they share. Install is in
// install.go, Uninstall in uninstall.go.

package updater

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// UpdateResult describes an update run.
type UpdateResult struct {
	Outcome Outcome
	From    string
	Target  string
	// Hold is why the proxy's staged rollout holds the host at Target,
	// its start version ("" when it does not).
	Hold string
}

// Update is the timer's entry point: it asks the proxy and moves the host
// when the window is open (or force), honouring the skip list, the
// downgrade rule and a pin. Jitter is slept unless force, and the proxy is
// asked again after it, so a window that closed meanwhile is respected.
// A disabled host is left alone: no repair, no proxy, no CDN. A census
// report is sent at the end of every run of an installed host. A run that
// leaves the host on an active version it could not repair fails with the
// reason.
func (u *Updater) Update(ctx context.Context, force bool) (res UpdateResult, err error) {
	// A host that was never installed gets nothing created on it.
	if !u.stateExists() {
		return res, ErrNotInstalled
	}
	st, err := u.openStore(ctx, true)
	if err != nil {
		return res, err
	}
	defer st.close()
	res.From = st.cfg.Status.Active
	s := &session{}
	defer s.close()
	defer func() { u.report(ctx, st.cfg, s.sd) }()
	req := request{trigger: triggerTimer}
	if force {
		req.trigger = triggerNow
	}
	if d := decide(st.cfg, nil, req); d.outcome == OutcomeDisabled {
		res.Outcome = d.outcome
		return res, nil
	}
	if err := u.attach(ctx, st, s); err != nil {
		return res, err
	}
	res, err = u.follow(ctx, st, s, req, res)
	if err == nil {
		u.selfUpdate(ctx, st)
	}
	return res, err
}

// follow decides, and moves the host when the decision says so: after the
// jitter, deciding again then, since the window may have closed or the
// target moved meanwhile.
func (u *Updater) follow(ctx context.Context, st *store, s *session, req request, res UpdateResult) (UpdateResult, error) {
	d := u.decideWithProxy(ctx, st.cfg, req)
	if d.act == actMove && d.jitter > 0 {
		wait := u.jitter(d.jitter)
		u.Log.Info("Waiting a random delay before updating.", "delay", wait.Round(time.Millisecond), "jitter", d.jitter)
		if err := u.sleep(ctx, wait); err != nil {
			res.Target = d.target
			return res, fmt.Errorf("waiting for jitter: %w", err)
		}
		d = u.decideWithProxy(ctx, st.cfg, req)
	}
	res.Target, res.Outcome, res.Hold = d.target, d.outcome, d.hold
	if d.act != actMove {
		return res, errors.Join(d.err, s.broken)
	}
	if err := u.moveTo(ctx, st, s.sd, goal{version: d.version, flavour: d.flavour, spec: st.cfg.Spec}); err != nil {
		return res, err
	}
	res.Outcome = OutcomeUpdated
	return res, nil
}

// decideWithProxy decides for cfg, asking the proxy when the decision
// depends on its answer (a failure to ask is a refusal), and logs the
// decision's note.
func (u *Updater) decideWithProxy(ctx context.Context, cfg *Config, req request) decision {
	d := decide(cfg, nil, req)
	if d.act == actAskProxy {
		// An admin's version needs only the build from the proxy, so an
		// answer naming no version does (as for Teleport's install
		// --force-version).
		pol, err := find(ctx, u.HTTP, cfg.Spec.Proxy, cfg.Spec.Group, cfg.Spec.UpdaterID, req.version == "")
		if err != nil {
			return decision{act: actRefuse, err: err}
		}
		d = decide(cfg, pol, req)
		if d.hold = pol.Hold; d.hold != "" {
			u.Log.Info("The proxy's staged rollout holds this host at its start version.", "reason", d.hold, "version", d.target)
		}
	}
	if n := d.note; n != nil {
		u.Log.Log(ctx, n.level, n.msg, n.args...)
	}
	return d
}

// moveTo fetches g.version, switches to it and commits it with g's
// settings; the outcome is recorded either way. Moving to the active
// version only records g, unless that version is missing or damaged on
// disk: then it is fetched and switched to again. A version this host
// keeps as another build is refused (ErrFlavour).
func (u *Updater) moveTo(ctx context.Context, st *store, sd install.Systemd, g goal) error {
	ver := g.version.String()
	if err := st.cfg.Status.flavourConflict(ver, g.flavour); err != nil {
		return err
	}
	if err := u.dropOtherBuild(&st.cfg.Status, ver, g.flavour); err != nil {
		return err
	}
	if st.cfg.Status.Active == ver && u.Tree.Intact(ver) == nil {
		// Already there: the repair at attach made links and units say so.
		return u.stepAfter(StepState, st.Confirm(g))
	}
	if err := u.fetch(ctx, g.spec.BaseURL, g.version, g.flavour); err != nil {
		return errors.Join(err, st.RecordFailure(ver, err))
	}
	settled, err := u.switchTo(ctx, st, sd, ver, g.flavour.FIPS, g.overwrite)
	switch {
	case err != nil && settled:
		return errors.Join(err, st.RecordRevert(ver, err))
	case err != nil:
		return errors.Join(err, st.RecordFailure(ver, err))
	}
	if err := u.stepAfter(StepState, st.Commit(g)); err != nil {
		return err
	}
	u.prune(st.cfg)
	return nil
}

// dropOtherBuild removes versions/<v> before a move to build f when f is
// not the active build and v is neither kept version: an earlier failed
// attempt may have left v there as the active build, and versions/<v>
// does not name its build, so it is fetched again as f.
func (u *Updater) dropOtherBuild(st *Status, v string, f download.Flavour) error {
	if f == st.ActiveFlavour || v == st.Active || v == st.Backup {
		return nil
	}
	if err := u.Tree.RemoveVersion(v); err != nil {
		return fmt.Errorf("removing %s before installing its %s build: %w", v, f, err)
	}
	return nil
}

// stepAfter reports s unless err says it was not reached.
func (u *Updater) stepAfter(s Step, err error) error {
	if err == nil {
		u.step(s)
	}
	return err
}

// Rollback switches to the backup version now, with a health check. The
// version rolled back from is put on the skip list, in the same save that
// commits the rollback, so that no crash lets the timer reinstall it;
// install or pin clears that. A pin on it moves to the backup.
func (u *Updater) Rollback(ctx context.Context) (*Config, error) {
	st, err := u.openStore(ctx, true)
	if err != nil {
		return nil, err
	}
	defer st.close()
	if st.cfg.Status.Active == "" {
		return nil, ErrNotInstalled
	}
	s := &session{}
	defer s.close()
	if err := u.attach(ctx, st, s); err != nil {
		return nil, err
	}
	g, err := u.rollbackGoal(st.cfg)
	if err == nil {
		err = u.moveTo(ctx, st, s.sd, g)
	}
	return st.Config(), err
}

// rollbackGoal is where Rollback goes: the backup, which must be installed.
func (u *Updater) rollbackGoal(cfg *Config) (goal, error) {
	from, backup := cfg.Status.Active, cfg.Status.Backup
	if backup == "" {
		return goal{}, ErrNoBackup
	}
	if _, ok, err := u.Tree.Installed(backup); err != nil || !ok {
		return goal{}, fmt.Errorf("%w: %s is not installed", ErrNoBackup, backup)
	}
	v, err := download.ParseVersion(backup)
	if err != nil {
		return goal{}, fmt.Errorf("backup version in update.yaml: %w", err)
	}
	g := goal{version: v, flavour: cfg.Status.BackupFlavour, spec: cfg.Spec, skip: from}
	if g.spec.Pinned && g.spec.PinnedVersion == from {
		g.spec.pin(backup)
	}
	return g, nil
}

// Pin holds the host at version (or the active version when empty),
// installing it first when needed and taking it off the skip list. A
// pinned host never follows the proxy.
func (u *Updater) Pin(ctx context.Context, version string) (*Config, error) {
	st, err := u.openStore(ctx, true)
	if err != nil {
		return nil, err
	}
	defer st.close()
	target, err := pinTarget(&st.cfg.Status, version)
	if err != nil {
		return st.Config(), err
	}
	s := &session{}
	defer s.close()
	if err := u.attach(ctx, st, s); err != nil {
		return nil, err
	}
	if err := st.Unskip(target.String()); err != nil {
		return st.Config(), err
	}
	g := goal{version: target, flavour: st.cfg.Status.ActiveFlavour, spec: st.cfg.Spec}
	g.spec.pin(target.String())
	err = u.moveTo(ctx, st, s.sd, g)
	return st.Config(), err
}

// Unpin lets the host follow the proxy again.
func (u *Updater) Unpin(ctx context.Context) (*Config, error) {
	return u.edit(ctx, (*store).Unpin)
}

// SetEnabled turns automatic updates on or off, and the timer with them;
// the setting is saved once the timer followed.
func (u *Updater) SetEnabled(ctx context.Context, enabled bool) (*Config, error) {
	return u.edit(ctx, func(st *store) error {
		if err := u.setTimer(ctx, enabled); err != nil {
			return err
		}
		return st.SetEnabled(enabled)
	})
}

// setTimer starts and enables, or stops and disables, the update timer.
func (u *Updater) setTimer(ctx context.Context, on bool) error {
	sd, err := u.systemd(ctx)
	if err != nil || sd == nil {
		if err == nil {
			u.Log.Warn("No systemd on this host; the timer was not touched.")
		}
		return err
	}
	defer sd.Close()
	if on {
		if err := sd.Enable(ctx, UpdaterTimerUnit); err != nil {
			return fmt.Errorf("enabling %s: %w", UpdaterTimerUnit, err)
		}
		u.stopV1Updater(ctx, sd)
		return sd.Start(ctx, UpdaterTimerUnit)
	}
	if err := sd.Stop(ctx, UpdaterTimerUnit); err != nil {
		return fmt.Errorf("stopping %s: %w", UpdaterTimerUnit, err)
	}
	return sd.Disable(ctx, UpdaterTimerUnit)
}

// SetCensus turns census reporting on or off. Turning it on is explicit:
// the host reports even while its automatic updates are disabled.
func (u *Updater) SetCensus(ctx context.Context, enabled bool) (*Config, error) {
	return u.edit(ctx, func(st *store) error { return st.SetCensus(enabled) })
}

// edit runs change on the store of an installed host.
func (u *Updater) edit(ctx context.Context, change func(*store) error) (*Config, error) {
	st, err := u.openStore(ctx, true)
	if err != nil {
		return nil, err
	}
	defer st.close()
	err = change(st)
	return st.Config(), err
}
