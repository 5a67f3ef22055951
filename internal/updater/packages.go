// This file holds the coexistence with a package install of Teleport:
// link-package and unlink-package, which a Teleport .deb or .rpm runs from
// its maintainer scripts, and what status says about how Teleport is
// installed.

package updater

import (
	"context"
	"errors"
	"fmt"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// How Teleport is installed on a host (StatusReport.Install).
const (
	InstallManaged = "managed" // versions this updater installed
	InstallPackage = "package" // a .deb or .rpm of Teleport
	InstallBoth    = "both"    // both; the managed version is the one linked
	InstallNone    = "none"
)

// installKind says how Teleport is installed on the host whose update.yaml
// is cfg.
func (u *Updater) installKind(cfg *Config) string {
	managed, pkg := cfg.Status.Active != "", u.Tree.HasPackage()
	switch {
	case managed && pkg:
		return InstallBoth
	case managed:
		return InstallManaged
	case pkg:
		return InstallPackage
	}
	return InstallNone
}

// LinkPackage links the binaries of Teleport's package
// (/opt/teleport/system/bin) into /usr/local/bin, only when no managed
// version is: on a host this updater manages it links nothing and says
// why (skipped). It takes update.lock only when the host has an
// update.yaml, so a package-only host gets nothing of the updater's.
// Outcomes: the links made; skipped set with a nil error when a managed
// version is installed or linked; an error naming a file in the way.
func (u *Updater) LinkPackage(ctx context.Context) (linked []string, skipped string, err error) {
	if u.stateExists() {
		st, err := u.openStore(ctx, false)
		if err != nil {
			return nil, "", err
		}
		defer st.close()
		if a := st.cfg.Status.Active; a != "" {
			return nil, "teleport-update manages this host (active version " + a + ")", nil
		}
	}
	linked, err = u.Tree.LinkPackage()
	if errors.Is(err, install.ErrLinked) {
		return nil, err.Error(), nil
	}
	return linked, "", err
}

// UnlinkPackage removes the links to the package's binaries from
// /usr/local/bin, and returns them.
func (u *Updater) UnlinkPackage(ctx context.Context) ([]string, error) {
	if u.stateExists() {
		st, err := u.openStore(ctx, false)
		if err != nil {
			return nil, err
		}
		defer st.close()
	}
	removed, err := u.Tree.UnlinkPackage()
	if err != nil {
		return removed, fmt.Errorf("unlink-package: %w", err)
	}
	return removed, nil
}
