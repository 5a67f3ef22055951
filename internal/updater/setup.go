// This file holds Setup, the hidden `setup` command a self-update runs in
// the updater it just put in place (selfupdate.go): the updater writes its
// own units, brings update.yaml to its format and checks itself, then
// records itself as the updater in place. The run that calls it holds
// update.lock, so Setup takes none.

package updater

import (
	"context"
	"fmt"
	"time"
)

// SetupRequest is what `teleport-update setup` is asked to do. Failed,
// when set, is a self-update that did not work: the previous updater,
// back in place, records it while it sets itself up again.
type SetupRequest struct {
	Failed *SelfUpdateResult
}

// Setup sets up this binary as the updater in place: update.yaml in its
// format (refused when the file is in a newer one), a dry status of it,
// its units written and loaded, and update.yaml committed with this
// version, the self-update's outcome and no self-update under way.
// Outcomes: nil; ErrNotInstalled; an error of the step that failed, after
// which update.yaml is as it was (units may be this binary's; the caller
// puts the previous updater back, whose setup rewrites them).
func (u *Updater) Setup(ctx context.Context, req SetupRequest) error {
	cfg, exists, err := LoadConfig(u.Tree.StatePath())
	if err != nil {
		return err
	}
	if !exists {
		return ErrNotInstalled
	}
	next := cfg.Clone()
	if err := next.Status.Updater.adopt(u.SelfVersion); err != nil {
		return err
	}
	if _, err := u.statusOf(next); err != nil {
		return fmt.Errorf("%w: dry status: %w", ErrSelfUpdate, err)
	}
	steps := setupForward
	if req.Failed != nil {
		steps = setupBack
	}
	if err := u.setupUnits(ctx, steps); err != nil {
		return err
	}
	if u.SetupCheck != nil {
		if err := u.SetupCheck(); err != nil {
			return fmt.Errorf("%w: self-check: %w", ErrSelfUpdate, err)
		}
	}
	next.Status.Updater.record(cfg.Status.Updater.Switching, req.Failed, u.now())
	if err := SaveConfig(u.Tree.StatePath(), next); err != nil {
		return err
	}
	u.step(steps.state)
	return nil
}

// setupUnits writes this updater's units and has systemd load them.
func (u *Updater) setupUnits(ctx context.Context, steps setupPhase) error {
	opts := u.Units
	opts.UpdaterVersion = u.SelfVersion
	changed, err := u.Tree.WriteUpdaterUnits(opts)
	if err != nil {
		return err
	}
	u.step(steps.units)
	sd, err := u.systemd(ctx)
	if err != nil || sd == nil {
		return err
	}
	defer sd.Close()
	if changed {
		if err := sd.DaemonReload(ctx); err != nil {
			return fmt.Errorf("daemon-reload: %w", err)
		}
	}
	u.step(steps.reload)
	return nil
}

// adopt brings s to this build's format, written by self (the updater
// version), and records self as the updater in place. A newer format than
// this build knows is refused.
func (s *UpdaterState) adopt(self string) error {
	if s.Format > StateFormat {
		return fmt.Errorf("%w: update.yaml is in format %d (written by teleport-update %s), newer than this teleport-update %s knows (%d)", ErrSelfUpdate, s.Format, s.FormatBy, self, StateFormat)
	}
	s.stamp(self)
	s.Version = self
	return nil
}

// stamp marks s as in this build's format, which self wrote first unless
// it already was.
func (s *UpdaterState) stamp(self string) {
	if s.Format < StateFormat {
		s.Format, s.FormatBy = StateFormat, self
	}
}

// record ends the self-update sw (nil when none was under way) as a
// success, or as failed when that is set.
func (s *UpdaterState) record(sw *SelfSwitch, failed *SelfUpdateResult, now time.Time) {
	s.Switching = nil
	switch {
	case failed != nil:
		r := *failed
		r.Time, r.Success = now.UTC(), false
		s.Last = &r
	case sw != nil:
		s.Last = &SelfUpdateResult{Time: now.UTC(), From: sw.From, To: sw.To, Success: true}
	}
}
