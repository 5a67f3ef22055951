package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/internal/updater"
)

// newSetupCmd is the hidden `setup`: a self-update runs it in the
// teleport-update it just put in place, while it holds update.lock.
func newSetupCmd(c *cli) *cobra.Command {
	var failed updater.SelfUpdateResult
	cmd := &cobra.Command{
		Use:    "setup",
		Short:  "Set up this binary as the updater in place (run by a self-update)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req updater.SetupRequest
			if failed.To != "" {
				req.Failed = &failed
			}
			return c.newUpdater(nil, 0).Setup(cmd.Context(), req)
		},
	}
	cmd.Flags().StringVar(&failed.From, "failed-from", "", "the updater a failed self-update started from")
	cmd.Flags().StringVar(&failed.To, "failed-to", "", "the updater a failed self-update went to")
	cmd.Flags().StringVar(&failed.ErrorCode, "failed-code", "", "why it failed, one word")
	cmd.Flags().StringVar(&failed.Error, "failed-error", "", "why it failed")
	return cmd
}

func newLinkPackageCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "link-package",
		Short: "Link a package install's binaries into /usr/local/bin, unless a managed version is linked",
		Long: `Link-package links the binaries of Teleport's .deb or .rpm package
(/opt/teleport/system/bin) into /usr/local/bin. The package's postinst runs it.
On a host where teleport-update manages a version, it links nothing and says so
(exit 0), so the package never takes over from the managed version.

Exit codes: 0 linked or skipped; 1 a file in the way that is not a link.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			linked, skipped, err := c.newUpdater(nil, interactiveLockWait).LinkPackage(cmd.Context())
			if err != nil {
				return err
			}
			if skipped != "" {
				fmt.Fprintf(c.stdout, "The package's binaries were not linked: %s.\n", skipped)
				return nil
			}
			fmt.Fprintf(c.stdout, "Linked %d binaries of the package install.\n", len(linked))
			return nil
		},
	}
}

func newUnlinkPackageCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "unlink-package",
		Short: "Remove the links to a package install's binaries from /usr/local/bin",
		Long: `Unlink-package removes the links link-package made (links in /usr/local/bin
to /opt/teleport/system/bin). The package's prerm runs it. Links of a managed
version are left alone.

Exit codes: 0 done; 1 failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			removed, err := c.newUpdater(nil, interactiveLockWait).UnlinkPackage(cmd.Context())
			for _, r := range removed {
				fmt.Fprintf(c.stdout, "Removed %s\n", r)
			}
			return err
		},
	}
}
