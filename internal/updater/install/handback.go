package install

import (
	"os"
	"path/filepath"
)

// Where a package install of Teleport (deb, rpm) puts its binary and its
// unit, relative to the root.
const (
	packagedBinaryRel = "usr/bin/teleport"
)

// packagedUnitDirs are the unit directories of packages, relative to the
// root: Debian's and the usr-merged one.
var packagedUnitDirs = []string{"lib/systemd/system", "usr/lib/systemd/system"}

// PackagedAgent reports whether a package install of Teleport is on the
// host: an executable /usr/bin/teleport and a teleport.service in a
// package's unit directory. Uninstall hands the host back to it. unit is
// the packaged unit file.
func (t *Tree) PackagedAgent() (unit string, ok bool) {
	fi, err := os.Stat(t.path(packagedBinaryRel))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return "", false
	}
	for _, dir := range packagedUnitDirs {
		p := filepath.Join(t.path(dir), AgentUnit)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// UnitEnabled reports whether unit is enabled in /etc/systemd/system: a
// link to it in some target's .wants or .requires directory, which is what
// `systemctl enable` makes for an [Install] section.
func (t *Tree) UnitEnabled(unit string) bool {
	for _, pattern := range []string{"*.wants", "*.requires"} {
		matches, _ := filepath.Glob(filepath.Join(t.UnitDir(), pattern, unit))
		if len(matches) > 0 {
			return true
		}
	}
	return false
}
