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
	TargetEdition string            `json:"target_edition,omitempty"`
	TargetFIPS    bool              `json:"target_fips,omitempty"`
	WindowOpen    bool              `json:"window_open"`
	NextWindow    *api.UpdateWindow `json:"next_window"`
	ProxyError    string            `json:"proxy_error,omitempty"`
	LastUpdate    *LastUpdate       `json:"last_update"`
	Census        bool              `json:"census"`
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
	if askProxy && cfg.Spec.Proxy != "" {
		ctx, cancel := context.WithTimeout(ctx, proxyStatusBudget)
		defer cancel()
		pol, err := Find(ctx, u.HTTP, cfg.Spec.Proxy, cfg.Spec.Group, cfg.Spec.UpdaterID)
		if err != nil {
			r.ProxyError = clean(err.Error())
		} else {
			r.Target = pol.Version.String()
			r.TargetEdition, r.TargetFIPS = pol.Flavour.Edition(), pol.Flavour.FIPS
			r.WindowOpen = pol.AutoUpdate
			r.NextWindow = pol.Window
		}
	}
	return r, nil
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
