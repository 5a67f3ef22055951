// This file holds the census hook: the Reporter interface through which
// the updater hands the state of a run to whoever sends census reports,
// and the rules of when it does (census on, a token, a few seconds).

package updater

import (
	"context"
	"time"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// ReportBudget bounds a census report: reporting never holds up a run for
// longer.
const ReportBudget = 5 * time.Second

// agentStateBudget bounds asking systemd about the agent for a report.
const agentStateBudget = time.Second

// Reporter sends census reports.
//
// The updater calls Report at the end of every install and update run of a
// host that reports (Spec.CensusOn, and an enrollment token), with the
// state it saved and a context that ends within ReportBudget. Report must
// return when the context ends. It handles its own failures (a report not
// delivered goes out after the next run) and never changes the run's
// outcome.
type Reporter interface {
	Report(ctx context.Context, st CensusState)
}

// CensusState is what the updater knows about the host for a census
// report.
type CensusState struct {
	// Config is update.yaml as the run left it.
	Config *Config
	// AgentActive is whether systemd runs the agent unit; false without
	// systemd or when systemd could not say in time.
	AgentActive bool
}

// report hands the run's state to the Reporter, unless the host does not
// report. sd is the run's systemd connection; without one, a host with
// systemd gets a short-lived one for the question.
func (u *Updater) report(ctx context.Context, cfg *Config, sd install.Systemd) {
	if u.Reporter == nil || !cfg.Spec.CensusOn() {
		return
	}
	if cfg.Spec.Token == "" {
		u.Log.Debug("No enrollment token configured; census report not sent.")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ReportBudget)
	defer cancel()
	u.Reporter.Report(ctx, u.censusState(ctx, cfg.Clone(), sd))
}

// CensusState returns what a census report of this host holds now:
// update.yaml as it is (NewConfig on a host without one) and systemd's
// view of the agent. It takes no lock.
func (u *Updater) CensusState(ctx context.Context) (CensusState, error) {
	cfg, exists, err := u.ReadConfig()
	if err != nil {
		return CensusState{}, err
	}
	if !exists {
		cfg = NewConfig()
	}
	return u.censusState(ctx, cfg, nil), nil
}

func (u *Updater) censusState(ctx context.Context, cfg *Config, sd install.Systemd) CensusState {
	ctx, cancel := context.WithTimeout(ctx, agentStateBudget)
	defer cancel()
	if sd == nil {
		conn, err := u.systemd(ctx)
		if err != nil || conn == nil {
			return CensusState{Config: cfg}
		}
		defer conn.Close()
		sd = conn
	}
	return CensusState{Config: cfg, AgentActive: agentActive(ctx, sd)}
}
