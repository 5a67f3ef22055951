package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/internal/manpage"
)

// newManCmd is the hidden command the packages are built with: it prints
// teleport-update(8), generated from this very command tree, so the page
// never drifts from --help.
func newManCmd(c *cli) *cobra.Command {
	var date string
	cmd := &cobra.Command{
		Use:    "man",
		Short:  "Print the teleport-update(8) manual page (roff)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := time.Parse(time.DateOnly, date); err != nil {
				return usageError("--date %q: want YYYY-MM-DD", date)
			}
			return manpage.Write(c.stdout, cmd.Root(), manpage.Page{
				Section: "8",
				Date:    date,
				Source:  "teleport-update " + version,
				Manual:  "System Administration",
				Extra:   manExtra,
			})
		},
	}
	cmd.Flags().StringVar(&date, "date", "1970-01-01", "the page's date (the release's), YYYY-MM-DD")
	return cmd
}

// manExtra are the page's sections after the commands: where things live.
var manExtra = []manpage.Section{
	{Title: "Files", Paragraphs: []string{
		"/etc/teleport-update/keys.d/\n  Public keys (PEM) that releases must be signed by, besides the built-in ones.",
		"/var/lib/teleport-update/update.yaml\n  The host's update state: proxy, group, pin, active and backup versions, skipped versions.",
		"/var/lib/teleport-update/versions/\n  The installed versions, side by side.",
		"/usr/local/bin/teleport-update\n  The updater the timer runs, written by enable and by self-update.",
		"/etc/systemd/system/teleport-update.service, teleport-update.timer\n  The units the updater writes; a package's copies under /usr/lib/systemd/system are the defaults they override.",
	}},
	{Title: "See also", Paragraphs: []string{"systemctl(1), systemd.timer(5), teleport(8)"}},
}
