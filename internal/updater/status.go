// This file holds Status: what `teleport-update status` shows, read from
// update.yaml without a lock and, optionally, from the proxy.

package updater

import (
	"context"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/termtext"
)

// StatusReport is what `teleport-update status` shows. Its JSON form is a
// stable interface for scripts. Its text fields hold no terminal control
// characters: errors from the proxy or from earlier runs may carry text
// from outside, and status prints them on an admin's terminal.
type StatusReport struct {
	Proxy         string `json:"proxy"`
	Group         string `json:"group"`
	BaseURL       string `json:"base_url"`
	Enabled       bool   `json:"enabled"`
	Pinned        bool   `json:"pinned"`
	PinnedVersion string `json:"pinned_version"`
	Active        string `json:"active"`
	// Edition ("community" or "ent") and FIPS are the active version's
	// build, named as in the find answer.
	Edition string   `json:"edition"`
	FIPS    bool     `json:"fips"`
	Backup  string   `json:"backup"`
	Skip    []string `json:"skip"`
	// Target, WindowOpen and NextWindow come from the proxy; ProxyError
	// says why they are empty when the proxy could not be asked.
	Target string `json:"target"`
	// TargetEdition and TargetFIPS are the build the proxy serves; when
	// they differ from the active build, update refuses until an admin
	// runs install.
	TargetEdition string `json:"target_edition,omitempty"`
	TargetFIPS    bool   `json:"target_fips,omitempty"`
	// TargetHold is why the proxy's staged rollout serves this host its
	// start version instead of the rollout's target ("" when it does not).
	TargetHold string            `json:"target_hold,omitempty"`
	WindowOpen bool              `json:"window_open"`
	NextWindow *api.UpdateWindow `json:"next_window"`
	ProxyError string            `json:"proxy_error,omitempty"`
	LastUpdate *LastUpdate       `json:"last_update"`
	Census     bool              `json:"census"`
	// UpdaterVersion is the teleport-update in place (the one the timer
	// runs); RunningUpdaterVersion the one that printed this status.
	UpdaterVersion        string `json:"updater_version"`
	RunningUpdaterVersion string `json:"running_updater_version"`
	// LastSelfUpdate is how the updater's last update of itself ended;
	// SelfUpdating says one is under way (or was interrupted).
	LastSelfUpdate *SelfUpdateResult `json:"last_self_update"`
	SelfUpdating   bool              `json:"self_updating,omitempty"`
	// Install is how Teleport is installed on the host: InstallManaged,
	// InstallPackage, InstallBoth or InstallNone (packages.go).
	Install string `json:"install"`
}

// proxyStatusBudget bounds how long status waits for the proxy.
const proxyStatusBudget = 5 * time.Second

// Status reads update.yaml and, when askProxy, the proxy's current answer
// for this host's group. It takes no lock (ReadConfig) and changes nothing.
func (u *Updater) Status(ctx context.Context, askProxy bool) (*StatusReport, error) {
	cfg, exists, err := u.ReadConfig()
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, ErrNotInstalled
	}
	r, err := u.statusOf(cfg)
	if err != nil {
		return nil, err
	}
	if askProxy && cfg.Spec.Proxy != "" {
		u.askProxyStatus(ctx, cfg, r)
	}
	return r, nil
}

// statusOf is the status of a host whose update.yaml is cfg, without the
// proxy's answer.
func (u *Updater) statusOf(cfg *Config) (*StatusReport, error) {
	clean := termtext.Strip
	r := &StatusReport{
		Proxy: clean(cfg.Spec.Proxy), Group: clean(cfg.Spec.Group), BaseURL: clean(cfg.Spec.BaseURL),
		Enabled: cfg.Spec.Enabled, Pinned: cfg.Spec.Pinned, PinnedVersion: clean(cfg.Spec.PinnedVersion),
		Active: clean(cfg.Status.Active), Backup: clean(cfg.Status.Backup), Skip: []string{},
		Edition: cfg.Status.ActiveFlavour.Edition(), FIPS: cfg.Status.ActiveFlavour.FIPS,
		Census: cfg.Spec.CensusOn(),
	}
	for _, v := range cfg.Status.Skip {
		r.Skip = append(r.Skip, clean(v))
	}
	r.LastUpdate = cleanLastUpdate(cfg.Status.LastUpdate)
	u.updaterStatus(cfg, r)
	return r, nil
}

// askProxyStatus fills r with the proxy's answer for cfg's group.
func (u *Updater) askProxyStatus(ctx context.Context, cfg *Config, r *StatusReport) {
	ctx, cancel := context.WithTimeout(ctx, proxyStatusBudget)
	defer cancel()
	pol, err := Find(ctx, u.HTTP, cfg.Spec.Proxy, cfg.Spec.Group, cfg.Spec.UpdaterID)
	if err != nil {
		r.ProxyError = termtext.Strip(err.Error())
		return
	}
	r.Target = pol.Version.String()
	r.TargetEdition, r.TargetFIPS = pol.Flavour.Edition(), pol.Flavour.FIPS
	r.WindowOpen = pol.AutoUpdate
	r.NextWindow = pol.Window
	r.TargetHold = pol.Hold
}

// updaterStatus fills r with what cfg and the host say about the updater
// itself and how Teleport is installed.
func (u *Updater) updaterStatus(cfg *Config, r *StatusReport) {
	us := cfg.Status.Updater
	r.UpdaterVersion = termtext.Strip(u.installedUpdater(cfg))
	r.RunningUpdaterVersion = u.SelfVersion
	if us.Last != nil {
		last := *us.Last
		last.From, last.To = termtext.Strip(last.From), termtext.Strip(last.To)
		last.Error, last.ErrorCode = termtext.Strip(last.Error), termtext.Strip(last.ErrorCode)
		r.LastSelfUpdate = &last
	}
	r.SelfUpdating = us.Switching != nil
	r.Install = u.installKind(cfg)
}

// cleanLastUpdate is lu with its text made safe to print (see termtext.Strip).
func cleanLastUpdate(lu *LastUpdate) *LastUpdate {
	if lu == nil {
		return nil
	}
	out := &LastUpdate{
		Time: lu.Time, Target: termtext.Strip(lu.Target), Success: lu.Success,
		Error: termtext.Strip(lu.Error), ErrorCode: termtext.Strip(lu.ErrorCode),
	}
	for _, st := range lu.Steps {
		out.Steps = append(out.Steps, RunStep{Name: termtext.Strip(st.Name), DurationMS: st.DurationMS, Result: termtext.Strip(st.Result)})
	}
	return out
}
