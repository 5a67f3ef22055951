package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/census/store"
)

// staleListedInTable bounds the stale hosts printed in the table; --json
// lists up to api.MaxStaleListed.
const staleListedInTable = 20

func newProxyCensusCmd(c *cli) *cobra.Command {
	var (
		dbPath     string
		pwFile     string
		asJSON     bool
		staleAfter time.Duration
		format     string
	)
	cmd := &cobra.Command{
		Use:   "census --db FILE [--json] [--stale-after 24h] [--format json|posthog]",
		Short: "Summarize or export the census reports a proxy has stored",
		Long: `Census reads the proxy's census database and prints how many hosts run each
version, group, OS, architecture, install method, container runtime and cloud,
how their last update went, and which hosts have not reported for longer than
--stale-after.

--json prints the summary as JSON. --format exports every host's latest report
as JSON lines instead: "json" as stored, "posthog" as PostHog events with the
properties flattened as in Teleport's RFD 108 (tp.agent.services = [node, kube]
plus tp.agent.service.node = true, ...).

The database may be in use by a running proxy; census only reads it (opened
read-only, never migrated), so read access to the file is enough. A database
from another teleport-update version is refused with the version to use.

Exit codes: 0 printed; 1 the database could not be read; 2 bad flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dbPath == "" {
				return usageError("--db FILE is required")
			}
			if err := checkCensusDB("--db", dbPath); err != nil {
				return err
			}
			if staleAfter <= 0 {
				return usageError("--stale-after must be positive, got %v", staleAfter)
			}
			if format != "" && format != store.FormatJSON && format != store.FormatPostHog {
				return usageError("--format must be %q or %q, got %q", store.FormatJSON, store.FormatPostHog, format)
			}
			if format != "" && asJSON {
				return usageError("--json and --format are exclusive: --json prints the summary, --format exports hosts")
			}
			ctx := cmd.Context()
			st, err := store.OpenReadOnly(ctx, dbPath, store.Options{Logger: c.logger(), PasswordFile: pwFile})
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("census database %s does not exist", dbPath)
			}
			if err != nil {
				return err
			}
			defer st.Close()
			if format != "" {
				return st.Export(ctx, c.stdout, format)
			}
			sum, err := st.Summary(ctx, time.Now(), staleAfter)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, sum)
			}
			return printCensusSummary(c.stdout, sum)
		},
	}
	cmd.Flags().StringVar(&dbPath, "db", "", "census database file or postgres:// URL (the proxy's --census-db)")
	cmd.Flags().StringVar(&pwFile, "db-password-file", "", "file holding the PostgreSQL password of --db")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().DurationVar(&staleAfter, "stale-after", 24*time.Hour, "list hosts not seen for this long as stale")
	cmd.Flags().StringVar(&format, "format", "", `export every host as JSON lines: "json" or "posthog"`)
	cmd.AddCommand(newProxyCensusReenrollCmd(c), newProxyCensusMigrateCmd(c))
	return cmd
}

func newProxyCensusMigrateCmd(c *cli) *cobra.Command {
	var from, to, pwFile string
	cmd := &cobra.Command{
		Use:   "migrate --from FILE --to postgres://USER@HOST/DB [--to-password-file FILE]",
		Short: "Copy an SQLite census into PostgreSQL, for proxies that share one database",
		Long: `Migrate copies every host of an SQLite census database (the reports, their
update history, and the key, group and sequence number each host bound) into
a PostgreSQL database, creating its schema, in one transaction. Before it
commits it checks that PostgreSQL holds as many hosts per group as the file;
it refuses a PostgreSQL census that already holds hosts.

Stop the proxy writing to the file first: reports stored after the copy
started are not copied. Then start the proxies with --census-db set to the
URL. The password comes from --to-password-file, PGPASSFILE or ~/.pgpass,
never from the command line.

Exit codes: 0 copied; 1 failed (nothing committed); 2 bad flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usageError("--from FILE and --to postgres://… are required")
			}
			if store.IsPostgresURL(from) || !store.IsPostgresURL(to) {
				return usageError("--from must be an SQLite file and --to a postgres:// URL")
			}
			if err := checkCensusDB("--to", to); err != nil {
				return err
			}
			res, err := store.CopyToPostgres(cmd.Context(), from, to, store.Options{Logger: c.logger(), PasswordFile: pwFile})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Copied %d census hosts to %s; counts per group verified:\n", res.Hosts, store.Redact(to))
			for _, g := range slices.Sorted(maps.Keys(res.ByGroup)) {
				fmt.Fprintf(c.stdout, "  %s\t%d\n", g, res.ByGroup[g])
			}
			fmt.Fprintf(c.stdout, "Copied the rollout state: %d groups, %d transitions; counts verified.\n", res.RolloutGroups, res.RolloutHistory)
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "SQLite census database file to copy")
	cmd.Flags().StringVar(&to, "to", "", "PostgreSQL database URL, without a password")
	cmd.Flags().StringVar(&pwFile, "to-password-file", "", "file holding the PostgreSQL password")
	return cmd
}

func newProxyCensusReenrollCmd(c *cli) *cobra.Command {
	var dbPath, pwFile string
	cmd := &cobra.Command{
		Use:   "reenroll --db FILE HOST_ID",
		Short: "Let a host bind a new key or group with its next census report",
		Long: `Reenroll unbinds the key and update group a host's first signed census
report bound to its host id. The next signed report of that host id binds
its key and its token's group anew. Do this when a host was reinstalled (it
has a new key) or moved to another group; until then its reports are refused
with 409 Conflict. Reports older than the host's last stored one stay refused.

The database may be in use by a running proxy.

Exit codes: 0 re-enrolled; 1 failed (unknown host id, database error); 2 bad flags.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dbPath == "" {
				return usageError("--db FILE is required")
			}
			if !api.ValidHostID(args[0]) {
				return usageError("HOST_ID must be 64 lowercase hex digits, as in the census export")
			}
			if err := checkCensusDB("--db", dbPath); err != nil {
				return err
			}
			if !store.IsPostgresURL(dbPath) {
				if _, err := os.Stat(dbPath); err != nil {
					return fmt.Errorf("census database: %w", err)
				}
			}
			st, err := store.Open(cmd.Context(), dbPath, store.Options{Logger: c.logger(), PasswordFile: pwFile})
			if err != nil {
				return err
			}
			if err := st.Reenroll(cmd.Context(), args[0]); err != nil {
				st.Close()
				return err
			}
			if err := st.Close(); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Host %s re-enrolled: its next signed census report binds its key and group.\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&dbPath, "db", "", "census database file or postgres:// URL (the proxy's --census-db)")
	cmd.Flags().StringVar(&pwFile, "db-password-file", "", "file holding the PostgreSQL password of --db")
	return cmd
}

// printCensusSummary writes sum as readable tables.
func printCensusSummary(w io.Writer, sum *api.Summary) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Census of %d hosts at %s; %d not seen for %s.\n",
		sum.TotalHosts, sum.GeneratedAt.Format(time.RFC3339), sum.StaleHosts, sum.StaleAfter)
	sections := []struct {
		title  string
		counts map[string]int
	}{
		{"Version", sum.ByVersion},
		{"Group", sum.ByGroup},
		{"OS", sum.ByOS},
		{"Architecture", sum.ByArchitecture},
		{"Install method", sum.ByInstallMethod},
		{"Container runtime", sum.ByContainerRuntime},
		{"Cloud", sum.ByCloud},
		{"Updater status", sum.ByUpdaterStatus},
		{"Last update", sum.ByLastUpdateResult},
	}
	for _, s := range sections {
		fmt.Fprintf(tw, "\n%s\tHosts\n", s.title)
		for _, k := range sortedByCount(s.counts) {
			fmt.Fprintf(tw, "%s\t%d\n", k, s.counts[k])
		}
	}
	if len(sum.Groups) > 0 {
		names := slices.Sorted(maps.Keys(sum.Groups))
		fmt.Fprintf(tw, "\nGroup\tHosts\tLast update succeeded\tfailed\tnone yet\n")
		for _, name := range names {
			g := sum.Groups[name]
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", name, g.Hosts, g.ByLastUpdateResult[api.ResultSuccess],
				g.ByLastUpdateResult[api.ResultFailure], g.ByLastUpdateResult[api.ResultNone])
		}
		fmt.Fprintf(tw, "\nGroup\tVersion\tHosts\n")
		for _, name := range names {
			g := sum.Groups[name]
			for _, v := range sortedByCount(g.ByVersion) {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", name, v, g.ByVersion[v])
			}
		}
	}
	if len(sum.Stale) > 0 {
		fmt.Fprintf(tw, "\nStale host\tGroup\tVersion\tLast seen\n")
		for i, h := range sum.Stale {
			if i == staleListedInTable {
				fmt.Fprintf(tw, "… and %d more (see --json)\n", sum.StaleHosts-staleListedInTable)
				break
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.HostID, h.Group, cmp.Or(h.Version, api.SummaryUnknown), h.LastSeen.Format(time.RFC3339))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print census summary: %w", err)
	}
	return nil
}

// sortedByCount returns the keys of counts, largest count first, then by name.
func sortedByCount(counts map[string]int) []string {
	return slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
}
