// This file holds decide: the pure function from the host's state, the
// proxy's answer and what was asked to a decision (move to V, nothing to
// do because …, refuse because …). It does no I/O and reads no clock, so
// every rule is table-tested without servers or disk: disabled, pinned,
// skip list, window, jitter, up to date, downgrade, first install,
// re-install, and the build (edition, FIPS), which only an admin's install
// changes.

package updater

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/updater/download"
)

// Outcome says what an update run did.
type Outcome string

// Outcomes of Update.
const (
	OutcomeDisabled     Outcome = "disabled"
	OutcomeWindowClosed Outcome = "window closed"
	OutcomeUpToDate     Outcome = "up to date"
	OutcomeSkipped      Outcome = "target is on the skip list"
	OutcomeUpdated      Outcome = "updated"
	OutcomePinned       Outcome = "pinned"
	// outcomeDelayed: the proxy spreads updates over a random delay,
	// which a re-install does not wait for (the timer does).
	outcomeDelayed Outcome = "waiting for the random delay"
)

// trigger says who asks for a decision.
type trigger int

const (
	// triggerTimer is `update`: the window and the jitter apply.
	triggerTimer trigger = iota
	// triggerNow is `update --now`: neither the window nor the jitter.
	triggerNow
	// triggerInstall is `install`: a first install takes the proxy's
	// target at once; a re-install moves only as the timer would now,
	// never after a random delay.
	triggerInstall
)

// request is what a decision is asked for.
type request struct {
	trigger trigger
	// version is the version an admin named (install --version); it
	// wins over every rule.
	version string
}

// action is what a decision says to do.
type action int

const (
	actNone     action = iota // nothing to do; outcome says why
	actMove                   // move the host to version
	actRefuse                 // refuse; err says why
	actAskProxy               // the decision needs the proxy's answer
)

// decision is what decide returns.
type decision struct {
	act action
	// target is the version the decision is about, for reports: the
	// proxy's target, the pin, the active version, or "".
	target  string
	version *semver.Version  // actMove: where to go
	flavour download.Flavour // actMove: which build of version
	outcome Outcome          // actNone: why not
	err     error            // actRefuse: why not
	// jitter is the longest random delay to wait before moving.
	jitter time.Duration
	// note, when set, tells an admin why the host stays where it is.
	note *note
	// hold is why the proxy's rollout serves this host its start version
	// (Policy.Hold), "" when it does not.
	hold string
}

// note is a log line a decision asks for.
type note struct {
	level slog.Level
	msg   string
	args  []any
}

// decide applies the update rules to cfg and the proxy's answer pol (nil
// when the proxy was not asked; the decision then says whether it must
// be). The window is judged at the proxy's clock (pol.AutoUpdate), so
// deciding needs no clock of its own.
func decide(cfg *Config, pol *Policy, req request) decision {
	switch {
	case req.version != "" && pol == nil:
		// The proxy says which build (edition, FIPS) to install.
		return decision{act: actAskProxy}
	case req.version != "":
		return adminVersion(req.version, pol.Flavour)
	case req.trigger == triggerInstall && cfg.Status.Active == "":
		return firstInstall(&cfg.Status, pol)
	case !cfg.Spec.Enabled:
		return disabled(req, &cfg.Status)
	case cfg.Spec.Pinned:
		return pinned(req, cfg)
	case pol == nil:
		return decision{act: actAskProxy}
	}
	return followProxy(req, &cfg.Status, pol)
}

// adminVersion moves to the version an admin named, as the build the
// proxy serves.
func adminVersion(version string, flavour download.Flavour) decision {
	v, err := download.ParseVersion(version)
	if err != nil {
		return decision{act: actRefuse, target: version, err: fmt.Errorf("--version: %w", err)}
	}
	return decision{act: actMove, target: v.String(), version: v, flavour: flavour}
}

// firstInstall takes the proxy's target regardless of the window, unless
// it failed its health check here before.
func firstInstall(st *Status, pol *Policy) decision {
	if pol == nil {
		return decision{act: actAskProxy}
	}
	d := decision{act: actMove, target: pol.Version.String(), version: pol.Version, flavour: pol.Flavour}
	if st.IsSkipped(d.target) {
		return refuseSkipped(pol.Version)
	}
	return d
}

// disabled keeps a host whose automatic updates are off where it is.
func disabled(req request, st *Status) decision {
	d := decision{act: actNone, outcome: OutcomeDisabled}
	if req.trigger == triggerInstall {
		d.note = &note{slog.LevelWarn, "Automatic updates are disabled on this host: install saved the settings and kept the active version. Run `teleport-update enable` to follow the proxy again, or install --version to choose a version.", []any{"active", st.Active}}
	}
	return d
}

// pinned moves a pinned host to its pin, without asking the proxy, unless
// it is there already or the pin failed its health check here.
func pinned(req request, cfg *Config) decision {
	want, active := cfg.Spec.PinnedVersion, cfg.Status.Active
	var d decision
	switch {
	case want == "" || want == active:
		d = decision{act: actNone, target: active, outcome: OutcomePinned}
	case cfg.Status.IsSkipped(want):
		d = decision{act: actNone, target: want, outcome: OutcomeSkipped}
		d.note = &note{slog.LevelWarn, "The pinned version failed its health check on this host; staying where the host is. Run pin --version to try it again.", []any{"pinned", want}}
	default:
		v, err := download.ParseVersion(want)
		if err != nil {
			return decision{act: actRefuse, target: want, err: fmt.Errorf("pinned_version in update.yaml: %w", err)}
		}
		return decision{act: actMove, target: want, version: v}
	}
	if req.trigger == triggerInstall && d.note == nil {
		d.note = &note{slog.LevelInfo, "This host is pinned: install saved the settings and kept the active version. Run `teleport-update unpin` to follow the proxy again.", []any{"active", active, "pinned", want}}
	}
	return d
}

// followProxy applies the proxy's answer: nothing to do when the window
// is closed (unless now), the host runs the target already, or the
// target failed its health check here; a downgrade only to a version that
// ran here; otherwise move, after the jitter when the timer asks.
func followProxy(req request, st *Status, pol *Policy) decision {
	if pol.Flavour != st.ActiveFlavour {
		return switchFlavour(req, st, pol)
	}
	target := pol.Version.String()
	none := func(o Outcome) decision { return decision{act: actNone, target: target, outcome: o} }
	switch {
	case !pol.AutoUpdate && req.trigger != triggerNow:
		return windowClosed(req, st, pol)
	case target == st.Active:
		return none(OutcomeUpToDate)
	case st.IsSkipped(target) && req.trigger == triggerInstall:
		return refuseSkipped(pol.Version)
	case st.IsSkipped(target):
		d := none(OutcomeSkipped)
		d.note = &note{slog.LevelWarn, "The proxy's target failed its health check on this host before; not installing it. Run install --version or pin --version to try it again.", []any{"target", target}}
		return d
	}
	if err := checkDowngrade(st, pol.Version); err != nil {
		return decision{act: actRefuse, target: target, err: err}
	}
	return move(req, st, pol)
}

// switchFlavour answers a proxy that serves another build than the host
// runs: the timer refuses, whatever the window, since a host never changes
// builds on its own; an admin's install switches at once, to the proxy's
// target as the proxy's build, with the skip list and downgrade rule.
func switchFlavour(req request, st *Status, pol *Policy) decision {
	target := pol.Version.String()
	if req.trigger != triggerInstall {
		return decision{act: actRefuse, target: target, err: fmt.Errorf("%w: the proxy serves %s builds but this host runs %s (%s); it does not switch builds on its own", ErrFlavour, pol.Flavour, st.Active, st.ActiveFlavour)}
	}
	if st.IsSkipped(target) {
		return refuseSkipped(pol.Version)
	}
	if err := checkDowngrade(st, pol.Version); err != nil {
		return decision{act: actRefuse, target: target, err: err}
	}
	return decision{act: actMove, target: target, version: pol.Version, flavour: pol.Flavour}
}

// windowClosed waits for the group's maintenance window.
func windowClosed(req request, st *Status, pol *Policy) decision {
	d := decision{act: actNone, target: pol.Version.String(), outcome: OutcomeWindowClosed}
	if req.trigger == triggerInstall {
		d.note = &note{slog.LevelInfo, "The group's maintenance window is closed: install saved the settings and kept the active version; the timer moves the host in the window, or run `teleport-update update --now`.", []any{"active", st.Active, "target", pol.Version}}
	}
	return d
}

// move goes to the proxy's target: the timer waits for the jitter first,
// update --now does not, and install leaves a move with jitter to the
// timer.
func move(req request, st *Status, pol *Policy) decision {
	d := decision{act: actMove, target: pol.Version.String(), version: pol.Version, flavour: pol.Flavour}
	switch {
	case req.trigger == triggerTimer:
		d.jitter = pol.Jitter
	case req.trigger == triggerInstall && pol.Jitter > 0:
		d = decision{act: actNone, target: d.target, outcome: outcomeDelayed}
		d.note = &note{slog.LevelInfo, "The proxy spreads updates over a random delay: install saved the settings and kept the active version; the timer moves the host after its delay, or run `teleport-update update --now`.", []any{"active", st.Active, "target", pol.Version, "jitter", pol.Jitter}}
	}
	return d
}

func refuseSkipped(target *semver.Version) decision {
	return decision{act: actRefuse, target: target.String(), err: fmt.Errorf("%w: the proxy's target %s failed its health check on this host before; run install --version %s to try it again", ErrSkipped, target, target)}
}

// checkDowngrade enforces the downgrade rule: the proxy may move a host
// down only to a version it ran successfully before.
func checkDowngrade(st *Status, target *semver.Version) error {
	if st.Active == "" {
		return nil
	}
	active, err := semver.StrictNewVersion(st.Active)
	if err != nil || !target.LessThan(active) {
		return nil
	}
	if slices.Contains(st.KnownGood, target.String()) {
		return nil
	}
	return fmt.Errorf("%w: the proxy asks for %s but %s is active and %s never ran successfully here; an admin can run `teleport-update pin --version %s`",
		ErrDowngrade, target, active, target, target)
}

// pinTarget is the version `pin` holds the host at: the version given, or
// the active one.
func pinTarget(st *Status, version string) (*semver.Version, error) {
	if version == "" {
		if st.Active == "" {
			return nil, fmt.Errorf("nothing is active to pin; use pin --version")
		}
		version = st.Active
	}
	v, err := download.ParseVersion(version)
	if err != nil {
		return nil, fmt.Errorf("--version: %w", err)
	}
	return v, nil
}
