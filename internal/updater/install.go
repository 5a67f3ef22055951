// This file holds Install: the first install of the agent on a host, and
// the re-install with new settings that config management or install.sh
// runs on an installed one.

package updater

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/gravitational/teleport-update/internal/census"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// InstallRequest is what `teleport-update install` asks for.
type InstallRequest struct {
	Proxy   string // HOST[:PORT]; required on a first install
	Group   string // "" keeps the configured group
	Token   string // "" keeps the configured token
	BaseURL string // "" keeps the configured base URL
	// Version installs exactly this version instead of the proxy's target.
	Version   string
	Overwrite bool
	// InstallMethods are TELEPORT_INSTALL_METHOD_* seen in the environment.
	InstallMethods []string
	// DisableCensus turns census reporting off for this host.
	DisableCensus bool
}

// Install installs the agent for the first time, or re-installs it with
// new settings.
//
// The version is req.Version when given: an admin's choice, installed
// regardless of the window, taken off the skip list, and the new pin of a
// pinned host. Without it, a first install takes the proxy's target
// regardless of the window, and a re-install decides as the timer would
// now (see decide), so re-running install changes nothing an admin set:
// it never turns a disabled host back on and never takes pinned_version
// from the proxy.
//
// Settings are saved when the install succeeds, including when it keeps
// the active version; a refused or failed install keeps the previous ones,
// except on a first install, where they say which proxy and CDN were
// tried. The outcome is recorded either way. Without req.Proxy on a host
// that has none, it is ErrProxyRequired.
func (u *Updater) Install(ctx context.Context, req InstallRequest) (*Config, error) {
	st, err := u.openStore(ctx, false)
	if err != nil {
		if errors.Is(err, ErrConfig) {
			err = fmt.Errorf("%w (fix or remove it, then run install again)", err)
		}
		return nil, err
	}
	defer st.close()
	if req.Proxy == "" && st.cfg.Spec.Proxy == "" {
		return nil, ErrProxyRequired
	}
	spec, err := installSpec(st.cfg.Spec, req)
	if err != nil {
		return nil, err
	}
	s := &session{}
	defer s.close()
	if err := u.attach(ctx, st, s); err != nil {
		return nil, err
	}
	if err := u.install(ctx, st, s, spec, req); err != nil {
		return st.Config(), err
	}
	if err := u.installSelf(st); err != nil {
		return st.Config(), err
	}
	if err := u.enableUnits(ctx, s.sd, spec.Enabled); err != nil {
		return st.Config(), err
	}
	u.setUpHost(ctx, s.sd)
	u.report(ctx, st.cfg, s.sd)
	return st.Config(), nil
}

// install decides where the install takes the host, with the new
// settings spec, and takes it there.
func (u *Updater) install(ctx context.Context, st *store, s *session, spec Spec, req InstallRequest) error {
	attempt := st.Config()
	attempt.Spec = spec
	d := u.decideWithProxy(ctx, attempt, request{trigger: triggerInstall, version: req.Version})
	switch d.act {
	case actRefuse:
		return d.err
	case actNone:
		return u.keep(ctx, st, s, spec)
	}
	g := goal{version: d.version, flavour: d.flavour, overwrite: req.Overwrite, spec: spec}
	if a := st.cfg.Status; a.Active != "" && d.flavour != a.ActiveFlavour {
		u.Log.Warn("Switching this host to another build, as the proxy serves.", "from", a.ActiveFlavour.String(), "to", d.flavour.String(), "version", d.target)
	}
	if req.Version != "" {
		if err := st.Unskip(d.target); err != nil {
			return err
		}
		if g.spec.Pinned {
			g.spec.pin(d.target)
		}
	}
	if st.cfg.Status.Active == "" {
		// A first install records the settings it tries, so that a failure
		// says which proxy and CDN that was.
		if err := st.SetSpec(spec); err != nil {
			return err
		}
		return u.firstInstall(ctx, st, s, g)
	}
	return u.moveTo(ctx, st, s.sd, g)
}

// firstInstall moves a host the updater never managed to g. Links of a
// package install of Teleport (link-package) make way for the managed
// version's, and come back when the install fails.
func (u *Updater) firstInstall(ctx context.Context, st *store, s *session, g goal) error {
	removed, err := u.Tree.UnlinkPackage()
	if err != nil {
		return err
	}
	if len(removed) > 0 {
		u.Log.Info("A package install of Teleport was linked; the managed version takes its place.", "links", len(removed))
	}
	err = u.moveTo(ctx, st, s.sd, g)
	if err != nil && len(removed) > 0 {
		_, lerr := u.Tree.LinkPackage()
		u.logErr(lerr, "linking the package install again")
	}
	return err
}

// installSelf puts this binary in place as the updater the units run and
// records its version, unless the one in place is newer (a self-update
// put it there; the timer would only take it up again). A failed
// self-update is forgotten, so the next run tries it again.
func (u *Updater) installSelf(st *store) error {
	if u.InstallSelf == nil || newer(st.cfg.Status.Updater.Version, u.SelfVersion) {
		return nil
	}
	if err := u.InstallSelf(); err != nil {
		return fmt.Errorf("the agent is installed, but copying teleport-update to /%s failed, so the timer cannot run it: %w; run install again", UpdaterBinPath, err)
	}
	return st.apply("recording the updater in place", func(c *Config) {
		c.Status.Updater.Version = u.SelfVersion
		if l := c.Status.Updater.Last; l != nil && !l.Success {
			c.Status.Updater.Last = nil
		}
	})
}

// keep keeps the active version with the new settings spec; last_update
// still tells of the last real attempt. An active version missing or
// damaged on disk is fetched and switched to again.
func (u *Updater) keep(ctx context.Context, st *store, s *session, spec Spec) error {
	active, err := download.ParseVersion(st.cfg.Status.Active)
	if err != nil {
		return fmt.Errorf("active version in update.yaml: %w", err)
	}
	if u.Tree.Intact(active.String()) == nil {
		return st.SetSpec(spec)
	}
	return u.moveTo(ctx, st, s.sd, goal{version: active, flavour: st.cfg.Status.ActiveFlavour, spec: spec})
}

// installSpec returns spec with the settings req gives, validated. It
// never changes enabled, pinned or pinned_version.
func installSpec(spec Spec, req InstallRequest) (Spec, error) {
	spec = spec.clone()
	if req.Proxy != "" {
		spec.Proxy = req.Proxy
	}
	if req.Group != "" {
		spec.Group = req.Group
	}
	if req.Token != "" {
		spec.Token = req.Token
	}
	if req.BaseURL != "" {
		spec.BaseURL = req.BaseURL
	}
	if len(req.InstallMethods) > 0 {
		spec.InstallMethods = slices.Clone(req.InstallMethods)
	}
	spec.CensusDisabled = spec.CensusDisabled || req.DisableCensus
	if err := spec.ensureIDs(); err != nil {
		return spec, err
	}
	if err := ValidateProxyAddr(spec.Proxy); err != nil {
		return spec, err
	}
	if spec.BaseURL != "" {
		if err := download.ValidateBaseURL(spec.BaseURL); err != nil {
			return spec, fmt.Errorf("--base-url: %w", err)
		}
	}
	return spec, nil
}

// ensureIDs gives s a census salt and an updater id when it has none.
func (s *Spec) ensureIDs() error {
	if s.CensusSalt == "" {
		salt, err := census.NewSalt()
		if err != nil {
			return err
		}
		s.CensusSalt = hex.EncodeToString(salt)
	}
	return ensureUpdaterID(s)
}

// enableUnits enables the agent when it runs (one the install left
// stopped is the admin's to enable) and, on a host with automatic updates
// on, enables and starts the update timer; a disabled host's timer stays
// off.
func (u *Updater) enableUnits(ctx context.Context, sd install.Systemd, updates bool) error {
	if sd == nil {
		return nil
	}
	var units []string
	if updates {
		units = append(units, UpdaterTimerUnit)
	}
	if agentActive(ctx, sd) {
		units = append(units, AgentUnit)
	}
	if len(units) > 0 {
		if err := sd.Enable(ctx, units...); err != nil {
			return fmt.Errorf("enabling %v: %w", units, err)
		}
		// As systemctl enable does: systemd reports a unit's enablement
		// from its last reload.
		u.logErr(sd.DaemonReload(ctx), "daemon-reload")
	}
	if !updates {
		return nil
	}
	if err := sd.Start(ctx, UpdaterTimerUnit); err != nil {
		return fmt.Errorf("starting %s: %w", UpdaterTimerUnit, err)
	}
	return nil
}
