package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// rolloutFlags are the flags every rollout subcommand takes.
type rolloutFlags struct {
	dbPath, resource string
	pwFile           string // the PostgreSQL password of a postgres:// --db
}

func (f *rolloutFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dbPath, "db", "", "census database file or postgres:// URL (the proxy's --census-db)")
	cmd.Flags().StringVar(&f.pwFile, "db-password-file", "", "file holding the PostgreSQL password of --db")
	cmd.Flags().StringVar(&f.resource, "resource", "", "the policy file the proxy serves (its --resource)")
}

// load checks the flags and reads the policy.
func (f *rolloutFlags) load() (*proxyapi.Policy, error) {
	if f.dbPath == "" || f.resource == "" {
		return nil, usageError("--db FILE and --resource FILE are required")
	}
	if err := checkCensusDB("--db", f.dbPath); err != nil {
		return nil, err
	}
	p, _, err := proxyapi.LoadPolicy(f.resource)
	if err != nil {
		return nil, err
	}
	if !p.Rollout() {
		return nil, fmt.Errorf("%s: %w", f.resource, proxyapi.ErrNoRollout)
	}
	if _, err := os.Stat(f.dbPath); !store.IsPostgresURL(f.dbPath) && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("census database %s does not exist", f.dbPath)
	}
	return p, nil
}

func newProxyRolloutCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Show or steer the staged rollout of a proxy's policy",
		Long: `Rollout reads and changes the staged rollout the proxy runs when its policy
sets start_version. The state lives in the census database, shared by every
proxy that uses it; a change made here is served by the proxies from their
next evaluation (every 30 s).

Every action is one guarded write: it applies only if the group is still in
the state it was read in, and it is kept in the rollout history.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newProxyRolloutStatusCmd(c))
	for _, a := range []struct {
		action rollout.Action
		short  string
	}{
		{rollout.ActionHalt, "Halt a group: it and the groups after it are served start_version, hosts stay where they are"},
		{rollout.ActionResume, "Resume a halted or rolled-back group: it is served the target again, inside its windows"},
		{rollout.ActionMarkDone, "Mark a group done, so that the next group may start"},
		{rollout.ActionRollback, "Roll a group back: its hosts move back to start_version inside their windows"},
	} {
		cmd.AddCommand(newProxyRolloutActionCmd(c, a.action, a.short))
	}
	return cmd
}

func newProxyRolloutActionCmd(c *cli, action rollout.Action, short string) *cobra.Command {
	var f rolloutFlags
	var reason string
	cmd := &cobra.Command{
		Use:   string(action) + " --db FILE --resource FILE GROUP [--reason TEXT]",
		Short: short,
		Long: short + `.

Exit codes: 0 done; 1 refused (the action does not apply to the group's
state, unknown group, no rollout in the policy) or failed; 2 bad flags.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := f.load()
			if err != nil {
				return err
			}
			st, err := store.Open(cmd.Context(), f.dbPath, store.Options{Logger: c.logger(), PasswordFile: f.pwFile})
			if err != nil {
				return err
			}
			tr, err := proxyapi.ApplyRolloutAction(cmd.Context(), st, p, args[0], action, reason, time.Now())
			if cerr := st.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Group %s: %s → %s (%s).\n", tr.Group, tr.From, tr.To, tr.Reason)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept in the rollout history")
	return cmd
}

func newProxyRolloutStatusCmd(c *cli) *cobra.Command {
	var f rolloutFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --db FILE --resource FILE [--json]",
		Short: "Print each group's rollout state, counts, canaries and the history",
		Long: `Status prints, per group, its state and since when, its host counts (initial:
hosts when it started; present: reported within 2 h; up to date: run the
target; failed: last tried the target and failed), its canaries with their
last result and run log, and the latest transitions.

The database is only read; it may be in use by a running proxy.

Exit codes: 0 printed; 1 failed; 2 bad flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := f.load()
			if err != nil {
				return err
			}
			st, err := store.OpenReadOnly(cmd.Context(), f.dbPath, store.Options{Logger: c.logger(), PasswordFile: f.pwFile})
			if err != nil {
				return err
			}
			defer st.Close()
			status, err := proxyapi.BuildRolloutStatus(cmd.Context(), st, p, time.Now(), proxyapi.DefaultRolloutPresentAfter)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, status)
			}
			return printRolloutStatus(c.stdout, status)
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// printRolloutStatus writes the status as readable tables.
func printRolloutStatus(w io.Writer, s *proxyapi.RolloutStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Rollout %s → %s (%s)\n\n", s.StartVersion, s.TargetVersion, s.Strategy)
	fmt.Fprintln(tw, "GROUP\tSTATE\tSINCE\tINITIAL\tPRESENT\tUP TO DATE\tFAILED\tREASON")
	for _, g := range s.Groups {
		since, state := "-", string(g.State)
		if g.Since != nil {
			since = g.Since.Format(time.RFC3339)
		}
		if g.HeldBack {
			state += " (held back)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", g.Name, state, since, g.Initial, g.Present, g.UpToDate, g.Failed, g.Reason)
	}
	for _, g := range s.Groups {
		for _, c := range g.Canaries {
			fmt.Fprintf(tw, "\ncanary of %s: host %s (updater %s): %s, runs %s", g.Name, c.HostID, c.UpdaterID, c.Outcome, c.Version)
			if c.ErrorCode != "" {
				fmt.Fprintf(tw, ", %s: %s", c.ErrorCode, c.Error)
			}
			var steps []string
			for _, st := range c.Steps {
				steps = append(steps, fmt.Sprintf("%s %dms %s", st.Name, st.DurationMS, st.Result))
			}
			if len(steps) > 0 {
				fmt.Fprintf(tw, "\n  run log: %s", strings.Join(steps, "; "))
			}
			fmt.Fprintln(tw)
		}
	}
	fmt.Fprintln(tw, "\nHISTORY (newest first)")
	for _, h := range s.History {
		fmt.Fprintf(tw, "%s\t%s\t%s → %s\t%s\t%s\n", h.Time.Format(time.RFC3339), h.Group, h.From, h.To, h.Actor, h.Reason)
	}
	return tw.Flush()
}
