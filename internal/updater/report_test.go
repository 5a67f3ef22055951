package updater

import (
	"context"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// recordingReporter keeps the census states it was handed.
type recordingReporter struct {
	got      []CensusState
	deadline time.Duration
}

func (r *recordingReporter) Report(ctx context.Context, st CensusState) {
	if d, ok := ctx.Deadline(); ok {
		r.deadline = time.Until(d)
	}
	r.got = append(r.got, st)
}

// The census report goes out at the end of update runs of a host that
// reports, with the state saved and the agent's state asked on the run's
// own systemd connection; a host that does not report hands nothing over.
func TestReportRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*Spec)
		reports bool
	}{
		{"on, with a token", func(*Spec) {}, true},
		{"no token", func(s *Spec) { s.Token = "" }, false},
		{"census off", func(s *Spec) { s.CensusDisabled = true }, false},
		{"updates disabled", func(s *Spec) { s.Enabled = false }, false},
		{"updates disabled, census on explicitly", func(s *Spec) { s.Enabled = false; s.setCensus(true) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sd *fakeSystemd
			connects := 0
			e, u := installedHost(t, func(e *testEnv, u *Updater) {
				sd = withSystemd(e, u)
				u.Systemd = func(context.Context) (install.Systemd, error) { connects++; return sd, nil }
			}, pub{"2.0.0", false})
			cfg := e.config()
			cfg.Spec.Token = "token-0123456789-0123456789-0123456789"
			tc.edit(&cfg.Spec)
			mustDo(t, SaveConfig(install.New(e.root).StatePath(), cfg))
			rep := &recordingReporter{}
			u.Reporter = rep
			connects = 0
			e.setTarget("2.0.0", true, 0)
			if _, err := u.Update(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			if got := len(rep.got) == 1; got != tc.reports {
				t.Fatalf("reports %d, want reporting %v", len(rep.got), tc.reports)
			}
			if !tc.reports {
				return
			}
			st := rep.got[0]
			if cfg.Spec.Enabled && (st.Config.Status.Active != "2.0.0" || !st.AgentActive || connects != 1) {
				t.Errorf("report: active %q, agent active %v, systemd connections %d; want 2.0.0, true, 1", st.Config.Status.Active, st.AgentActive, connects)
			}
			if !cfg.Spec.Enabled && (st.Config.Status.Active != "1.0.0" || !st.AgentActive) {
				t.Errorf("report of a disabled host: active %q, agent active %v", st.Config.Status.Active, st.AgentActive)
			}
			if rep.deadline <= 0 || rep.deadline > ReportBudget {
				t.Errorf("report deadline in %v, want within %v", rep.deadline, ReportBudget)
			}
		})
	}
}
