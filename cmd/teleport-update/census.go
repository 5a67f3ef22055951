package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/census"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// censusReporter is the updater.Reporter of the CLI: it collects the
// host's facts and sends the report with the run's HTTP client.
type censusReporter struct {
	root   string
	client *http.Client
	log    *slog.Logger
}

// Report sends the census report of a run. A failure is logged; the next
// run sends a report again.
func (r *censusReporter) Report(ctx context.Context, st updater.CensusState) {
	cfg := st.Config
	key, err := census.LoadOrCreateHostKey(install.New(r.root).HostKeyPath())
	if err != nil {
		r.log.Warn("Census report not sent: the host key is not usable.", "error", err)
		return
	}
	rep := census.Collect(ctx, r.root, updaterState(st), census.Options{})
	if err := census.Send(ctx, r.client, cfg.Spec.Proxy, cfg.Spec.Token, key, rep); err != nil {
		r.log.Warn("Census report not delivered; will retry on the next run.", "error", err)
		return
	}
	r.log.Info("Census report delivered.", "proxy", cfg.Spec.Proxy)
}

// updaterState is the part of the census report the updater knows.
func updaterState(st updater.CensusState) census.UpdaterState {
	cfg := st.Config
	us := census.UpdaterState{
		Group:             cfg.Spec.Group,
		ActiveVersion:     cfg.Status.Active,
		Pinned:            cfg.Spec.Pinned,
		Disabled:          !cfg.Spec.Enabled,
		InstallMethods:    cfg.Spec.InstallMethods,
		Salt:              []byte(cfg.Spec.CensusSalt),
		UpdaterID:         cfg.Spec.UpdaterID,
		SystemdUnitActive: st.AgentActive,
		UpdaterVersion:    cfg.Status.Updater.Version,
	}
	if l := cfg.Status.Updater.Last; l != nil && !l.Success {
		us.SelfUpdateError = l.ErrorCode + ": " + l.Error
	}
	if lu := cfg.Status.LastUpdate; lu != nil {
		us.LastUpdate = &api.UpdateResult{Time: lu.Time, Target: lu.Target, Success: lu.Success, ErrorCode: lu.ErrorCode, Error: lu.Error}
		for _, st := range lu.Steps {
			us.LastUpdate.Steps = append(us.LastUpdate.Steps, api.RunStep{Name: st.Name, DurationMS: st.DurationMS, Result: st.Result})
		}
	}
	return us
}

// logCensusNotice says at startup whether census reporting is on and how to
// see and turn it off.
func (c *cli) logCensusNotice(u *updater.Updater) {
	cfg, exists, err := u.ReadConfig()
	if err != nil || !exists {
		return
	}
	if !cfg.Spec.CensusOn() || cfg.Spec.Token == "" {
		u.Log.Info("Census reporting is off.")
		return
	}
	u.Log.Info("Census reporting is on: after each run this host sends its OS, architecture, install method and update state (no hostname, no IPs) to its proxy. See it with `teleport-update census`; turn it off with `teleport-update census --disable`.")
}

func newCensusCmd(c *cli) *cobra.Command {
	var asJSON, disable, enable bool
	cmd := &cobra.Command{
		Use:   "census [--json] [--disable|--enable]",
		Short: "Print the census report this host sends to its proxy",
		Long: `Census prints exactly the report this host sends to its proxy after
install and update runs: OS, architecture, glibc, install methods, container
and cloud environment, and the updater's state. host_id is a salted hash of
the machine id; no hostname, IP address or user name is ever sent.

--disable turns reporting off, --enable turns it back on. A host with
automatic updates disabled sends nothing unless reporting was turned on
with --enable.

Exit codes: 0 printed or changed; 1 failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if disable && enable {
				return usageError("--disable and --enable are exclusive")
			}
			u := c.newUpdater(nil, interactiveLockWait)
			if disable || enable {
				if _, err := u.SetCensus(cmd.Context(), enable); err != nil {
					return explain(err, "")
				}
				fmt.Fprintf(c.stdout, "Census reporting %s.\n", map[bool]string{true: "enabled", false: "disabled"}[enable])
				return nil
			}
			st, err := u.CensusState(cmd.Context())
			if err != nil {
				return err
			}
			cfg := st.Config
			r := census.Collect(cmd.Context(), c.root, updaterState(st), census.Options{})
			state := "on"
			switch {
			case cfg.Spec.CensusDisabled:
				state = "off"
			case !cfg.Spec.CensusOn():
				state = "off (automatic updates are disabled; census --enable turns it on anyway)"
			}
			if !asJSON {
				fmt.Fprintf(c.stdout, "Census reporting is %s. This is the report sent to %s:\n", state, orDefault(cfg.Spec.Proxy, "(no proxy configured)"))
			}
			return writeJSON(c.stdout, r)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print only the JSON report")
	cmd.Flags().BoolVar(&disable, "disable", false, "turn census reporting off")
	cmd.Flags().BoolVar(&enable, "enable", false, "turn census reporting on")
	return cmd
}
