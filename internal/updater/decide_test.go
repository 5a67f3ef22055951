package updater

import (
	"errors"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/updater/download"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	v := semver.MustParse
	pol := func(version string, open bool, jitter time.Duration) *Policy {
		return &Policy{Version: v(version), AutoUpdate: open, Jitter: jitter}
	}
	host := func(edit func(*Config)) *Config {
		c := NewConfig()
		c.Spec.Proxy = "proxy.example.com"
		c.Status.Active = "2.0.0"
		c.Status.KnownGood = []string{"1.0.0", "2.0.0"}
		if edit != nil {
			edit(c)
		}
		return c
	}
	disabled := func(c *Config) { c.Spec.Enabled = false }
	pinnedAt := func(p string) func(*Config) {
		return func(c *Config) { c.Spec.Pinned, c.Spec.PinnedVersion = true, p }
	}
	skipped := func(s string) func(*Config) { return func(c *Config) { c.Status.Skip = []string{s} } }
	fresh := func(c *Config) { c.Status.Active, c.Status.KnownGood = "", nil }
	timer, now, inst := request{trigger: triggerTimer}, request{trigger: triggerNow}, request{trigger: triggerInstall}
	admin := func(version string) request { return request{trigger: triggerInstall, version: version} }
	ent := download.Flavour{Enterprise: true}
	fips := download.Flavour{Enterprise: true, FIPS: true}
	as := func(f download.Flavour, p *Policy) *Policy { p.Flavour = f; return p }
	entHost := func(c *Config) { c.Status.ActiveFlavour = ent }

	for _, tc := range []struct {
		name    string
		cfg     *Config
		pol     *Policy
		req     request
		act     action
		target  string
		version string // actMove
		outcome Outcome
		err     error // actRefuse: errors.Is
		jitter  time.Duration
		note    bool
		flavour download.Flavour // actMove
	}{
		// The proxy is asked only when the decision depends on it.
		{name: "timer asks the proxy", cfg: host(nil), req: timer, act: actAskProxy},
		{name: "first install asks the proxy", cfg: host(fresh), req: inst, act: actAskProxy},
		{name: "disabled asks nobody", cfg: host(disabled), req: timer, act: actNone, outcome: OutcomeDisabled},
		{name: "disabled, now", cfg: host(disabled), req: now, act: actNone, outcome: OutcomeDisabled},
		{name: "disabled re-install keeps the version", cfg: host(disabled), req: inst, act: actNone, outcome: OutcomeDisabled, note: true},
		// Pinned hosts never follow the proxy.
		{name: "pinned at the active version", cfg: host(pinnedAt("2.0.0")), req: now, act: actNone, target: "2.0.0", outcome: OutcomePinned},
		{name: "pinned without a version", cfg: host(pinnedAt("")), req: timer, act: actNone, target: "2.0.0", outcome: OutcomePinned},
		{name: "pinned elsewhere moves there", cfg: host(pinnedAt("1.0.0")), req: timer, act: actMove, target: "1.0.0", version: "1.0.0"},
		{name: "pinned to a skipped version stays", cfg: host(func(c *Config) { pinnedAt("3.0.0")(c); skipped("3.0.0")(c) }), req: timer, act: actNone, target: "3.0.0", outcome: OutcomeSkipped, note: true},
		{name: "pinned to an invalid version", cfg: host(pinnedAt("../x")), req: timer, act: actRefuse, target: "../x", err: download.ErrInvalidVersion},
		{name: "pinned re-install keeps the version", cfg: host(pinnedAt("2.0.0")), req: inst, act: actNone, target: "2.0.0", outcome: OutcomePinned, note: true},
		{name: "pinned and disabled: disabled wins", cfg: host(func(c *Config) { pinnedAt("1.0.0")(c); disabled(c) }), req: timer, act: actNone, outcome: OutcomeDisabled},
		// The window.
		{name: "window closed", cfg: host(nil), pol: pol("3.0.0", false, 0), req: timer, act: actNone, target: "3.0.0", outcome: OutcomeWindowClosed},
		{name: "window closed, now", cfg: host(nil), pol: pol("3.0.0", false, time.Minute), req: now, act: actMove, target: "3.0.0", version: "3.0.0"},
		{name: "window closed, re-install", cfg: host(nil), pol: pol("3.0.0", false, 0), req: inst, act: actNone, target: "3.0.0", outcome: OutcomeWindowClosed, note: true},
		{name: "window open", cfg: host(nil), pol: pol("3.0.0", true, 0), req: timer, act: actMove, target: "3.0.0", version: "3.0.0"},
		// Jitter: the timer waits, now and install do not.
		{name: "jitter", cfg: host(nil), pol: pol("3.0.0", true, time.Minute), req: timer, act: actMove, target: "3.0.0", version: "3.0.0", jitter: time.Minute},
		{name: "jitter, now", cfg: host(nil), pol: pol("3.0.0", true, time.Minute), req: now, act: actMove, target: "3.0.0", version: "3.0.0"},
		{name: "jitter, re-install leaves it to the timer", cfg: host(nil), pol: pol("3.0.0", true, time.Minute), req: inst, act: actNone, target: "3.0.0", outcome: outcomeDelayed, note: true},
		{name: "no jitter, re-install moves", cfg: host(nil), pol: pol("3.0.0", true, 0), req: inst, act: actMove, target: "3.0.0", version: "3.0.0"},
		// Up to date and the skip list.
		{name: "up to date", cfg: host(nil), pol: pol("2.0.0", true, 0), req: timer, act: actNone, target: "2.0.0", outcome: OutcomeUpToDate},
		{name: "up to date, window closed", cfg: host(nil), pol: pol("2.0.0", false, 0), req: timer, act: actNone, target: "2.0.0", outcome: OutcomeWindowClosed},
		{name: "skipped target", cfg: host(skipped("3.0.0")), pol: pol("3.0.0", true, 0), req: now, act: actNone, target: "3.0.0", outcome: OutcomeSkipped, note: true},
		{name: "skipped target, re-install refuses", cfg: host(skipped("3.0.0")), pol: pol("3.0.0", true, 0), req: inst, act: actRefuse, target: "3.0.0", err: ErrSkipped},
		// Downgrades only to a version that ran here.
		{name: "downgrade to a known-good version", cfg: host(nil), pol: pol("1.0.0", true, 0), req: timer, act: actMove, target: "1.0.0", version: "1.0.0"},
		{name: "downgrade to an unknown version", cfg: host(nil), pol: pol("0.9.0", true, 0), req: now, act: actRefuse, target: "0.9.0", err: ErrDowngrade},
		{name: "downgrade through a re-install", cfg: host(nil), pol: pol("0.9.0", true, 0), req: inst, act: actRefuse, target: "0.9.0", err: ErrDowngrade},
		{name: "skip list before the downgrade rule", cfg: host(skipped("0.9.0")), pol: pol("0.9.0", true, 0), req: timer, act: actNone, target: "0.9.0", outcome: OutcomeSkipped, note: true},
		// A first install takes the proxy's target at once.
		{name: "first install, window closed, jitter", cfg: host(fresh), pol: pol("3.0.0", false, time.Minute), req: inst, act: actMove, target: "3.0.0", version: "3.0.0"},
		{name: "first install of a skipped target", cfg: host(func(c *Config) { fresh(c); skipped("3.0.0")(c) }), pol: pol("3.0.0", true, 0), req: inst, act: actRefuse, target: "3.0.0", err: ErrSkipped},
		{name: "first install on a disabled host", cfg: host(func(c *Config) { fresh(c); disabled(c) }), pol: pol("3.0.0", false, 0), req: inst, act: actMove, target: "3.0.0", version: "3.0.0"},
		{name: "timer on a host never installed", cfg: host(fresh), pol: pol("3.0.0", true, 0), req: timer, act: actMove, target: "3.0.0", version: "3.0.0"},
		// An admin's version wins over every rule.
		{name: "admin version on a disabled host", cfg: host(disabled), pol: pol("9.9.9", false, 0), req: admin("0.9.0"), act: actMove, target: "0.9.0", version: "0.9.0"},
		{name: "admin version, pinned elsewhere", cfg: host(pinnedAt("1.0.0")), pol: pol("9.9.9", false, 0), req: admin("3.0.0"), act: actMove, target: "3.0.0", version: "3.0.0"},
		{name: "admin version, skipped", cfg: host(skipped("3.0.0")), pol: pol("9.9.9", false, 0), req: admin("3.0.0"), act: actMove, target: "3.0.0", version: "3.0.0"},
		{name: "admin version, the active one", cfg: host(nil), pol: pol("9.9.9", false, 0), req: admin("2.0.0"), act: actMove, target: "2.0.0", version: "2.0.0"},
		// The build (edition, FIPS) never changes on the timer's watch; an
		// admin's install switches it, at once.
		{name: "admin version asks the proxy for the build", cfg: host(nil), req: admin("3.0.0"), act: actAskProxy},
		{name: "admin version takes the proxy's build", cfg: host(nil), pol: as(fips, pol("9.9.9", false, 0)), req: admin("3.0.0"), act: actMove, target: "3.0.0", version: "3.0.0", flavour: fips},
		{name: "first install takes the proxy's build", cfg: host(fresh), pol: as(ent, pol("3.0.0", false, 0)), req: inst, act: actMove, target: "3.0.0", version: "3.0.0", flavour: ent},
		{name: "timer refuses another build", cfg: host(nil), pol: as(ent, pol("3.0.0", true, 0)), req: timer, act: actRefuse, target: "3.0.0", err: ErrFlavour},
		{name: "timer refuses another build, window closed", cfg: host(nil), pol: as(fips, pol("2.0.0", false, 0)), req: timer, act: actRefuse, target: "2.0.0", err: ErrFlavour},
		{name: "now refuses another build", cfg: host(entHost), pol: pol("3.0.0", true, 0), req: now, act: actRefuse, target: "3.0.0", err: ErrFlavour},
		{name: "timer follows the same build", cfg: host(entHost), pol: as(ent, pol("3.0.0", true, 0)), req: now, act: actMove, target: "3.0.0", version: "3.0.0", flavour: ent},
		{name: "re-install switches the build at once", cfg: host(nil), pol: as(fips, pol("3.0.0", false, 60*time.Second)), req: inst, act: actMove, target: "3.0.0", version: "3.0.0", flavour: fips},
		{name: "re-install switch honours the skip list", cfg: host(skipped("3.0.0")), pol: as(ent, pol("3.0.0", true, 0)), req: inst, act: actRefuse, target: "3.0.0", err: ErrSkipped},
		{name: "re-install switch honours the downgrade rule", cfg: host(nil), pol: as(ent, pol("0.5.0", true, 0)), req: inst, act: actRefuse, target: "0.5.0", err: ErrDowngrade},
		{name: "disabled host keeps its build", cfg: host(disabled), pol: as(ent, pol("3.0.0", true, 0)), req: inst, act: actNone, outcome: OutcomeDisabled, note: true},
		{name: "admin version invalid", cfg: host(nil), pol: pol("9.9.9", false, 0), req: admin("v3"), act: actRefuse, target: "v3", err: download.ErrInvalidVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := tc.cfg.Clone()
			d := decide(tc.cfg, tc.pol, tc.req)
			if d.act != tc.act || d.target != tc.target || d.outcome != tc.outcome || d.jitter != tc.jitter || (d.note != nil) != tc.note {
				t.Errorf("decide = {act %d, target %q, outcome %q, jitter %v, note %v}, want {act %d, target %q, outcome %q, jitter %v, note %v}",
					d.act, d.target, d.outcome, d.jitter, d.note != nil, tc.act, tc.target, tc.outcome, tc.jitter, tc.note)
			}
			if got := versionString(d.version); got != tc.version {
				t.Errorf("version = %q, want %q", got, tc.version)
			}
			if d.flavour != tc.flavour {
				t.Errorf("flavour = %v, want %v", d.flavour, tc.flavour)
			}
			if (d.err == nil) != (tc.err == nil) || (tc.err != nil && !errors.Is(d.err, tc.err)) {
				t.Errorf("err = %v, want %v", d.err, tc.err)
			}
			if !configsEqual(before, tc.cfg) {
				t.Errorf("decide changed the config")
			}
		})
	}
}

func TestPinTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		active, version, want string
		fails                 bool
	}{
		{active: "2.0.0", want: "2.0.0"},
		{active: "2.0.0", version: "1.0.0", want: "1.0.0"},
		{version: "1.0.0", want: "1.0.0"},
		{fails: true},
		{active: "2.0.0", version: "v1", fails: true},
	} {
		got, err := pinTarget(&Status{Active: tc.active}, tc.version)
		if (err != nil) != tc.fails || versionString(got) != tc.want {
			t.Errorf("pinTarget(active %q, %q) = %v, %v; want %q (fails %v)", tc.active, tc.version, got, err, tc.want, tc.fails)
		}
	}
}

func versionString(v *semver.Version) string {
	if v == nil {
		return ""
	}
	return v.String()
}

func configsEqual(a, b *Config) bool {
	x, err1 := a.Marshal()
	y, err2 := b.Marshal()
	return err1 == nil && err2 == nil && string(x) == string(y)
}
