package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/census"
	"github.com/gravitational/teleport-update/updater"
	"github.com/gravitational/teleport-update/updater/install"
)

// censusBudget bounds a census report; it never holds up an update for longer.
const censusBudget = 5 * time.Second

// censusReport builds the report this host would send.
func (c *cli) censusReport(ctx context.Context, cfg *updater.Config) api.Report {
	tree := install.New(c.root)
	st := census.UpdaterState{
		Group:          cfg.Spec.Group,
		ActiveVersion:  cfg.Status.Active,
		Pinned:         cfg.Spec.Pinned,
		Disabled:       !cfg.Spec.Enabled,
		InstallMethods: cfg.Spec.InstallMethods,
		Salt:           []byte(cfg.Spec.CensusSalt),
	}
	if lu := cfg.Status.LastUpdate; lu != nil {
		st.LastUpdate = &api.UpdateResult{Time: lu.Time, Target: lu.Target, Success: lu.Success, ErrorCode: lu.ErrorCode}
	}
	if connect := c.hostSystemd(); connect != nil && tree.HasSystemd() {
		st.SystemdUnitActive = unitActive(ctx, connect, updater.AgentUnit)
	}
	return census.Collect(ctx, c.root, st, census.Options{})
}

// unitActive asks systemd whether unit is active, within a short budget.
func unitActive(ctx context.Context, connect updater.SystemdFunc, unit string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	sd, err := connect(ctx)
	if err != nil {
		return false
	}
	defer sd.Close()
	s, err := sd.State(ctx, unit)
	return err == nil && s.ActiveState == "active"
}

// reportCensus sends the census report after install and update runs. It
// has a fixed budget, logs failures, and never changes the run's outcome; a
// failed report is retried on the next run.
func (c *cli) reportCensus(ctx context.Context, cfg *updater.Config) {
	log := c.logger()
	if !cfg.Spec.CensusOn() {
		return
	}
	if cfg.Spec.Token == "" {
		log.Debug("No enrollment token configured; census report not sent.")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), censusBudget)
	defer cancel()
	r := c.censusReport(ctx, cfg)
	client := &http.Client{Timeout: censusBudget}
	if err := census.Send(ctx, client, cfg.Spec.Proxy, cfg.Spec.Token, r); err != nil {
		log.Warn("Census report not delivered; will retry on the next run.", "error", err)
		return
	}
	log.Info("Census report delivered.", "proxy", cfg.Spec.Proxy)
}

// logCensusNotice says at startup whether census reporting is on and how to
// see and turn it off.
func (c *cli) logCensusNotice(u *updater.Updater) {
	cfg, exists, err := updater.LoadConfig(u.Tree.StatePath())
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
			cfg, exists, err := updater.LoadConfig(u.Tree.StatePath())
			if err != nil {
				return err
			}
			if !exists {
				cfg = updater.NewConfig()
			}
			r := c.censusReport(cmd.Context(), cfg)
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
			enc := json.NewEncoder(c.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(r)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print only the JSON report")
	cmd.Flags().BoolVar(&disable, "disable", false, "turn census reporting off")
	cmd.Flags().BoolVar(&enable, "enable", false, "turn census reporting on")
	return cmd
}
