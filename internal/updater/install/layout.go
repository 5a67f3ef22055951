package install

import (
	"archive/tar"
	"path"
	"strings"
)

// Release tarballs come in two layouts, both accepted by Extract:
//
//   - Teleport's own, as its CDN publishes it: everything under one top
//     directory, "teleport" (community) or "teleport-ent" (Enterprise),
//     with the binaries directly in it, examples/systemd/teleport.service,
//     an install script, README.md, CHANGELOG.md and VERSION;
//   - flat: bin/<executables> and optionally
//     lib/systemd/system/teleport.service at the archive root (this
//     project's own test releases and existing mirrors).
//
// The first entry decides. In Teleport's layout the files are placed as
// Teleport's own updater places them: README.md, CHANGELOG.md and VERSION
// in share/, the example unit in lib/systemd/system/, the install script and
// the other examples nowhere, and everything else under bin/.
var teleportTopDirs = []string{"teleport", "teleport-ent"}

// teleportDocs are the top-level files of Teleport's layout kept in share/.
var teleportDocs = []string{"README.md", "CHANGELOG.md", "VERSION"}

// teleportExampleUnit is where Teleport's tarball carries its systemd unit.
const teleportExampleUnit = "examples/systemd/teleport.service"

// releaseUnit is where a version directory keeps the release's own unit.
const releaseUnit = "lib/systemd/system/teleport.service"

// layout maps the cleaned name of each archive entry to its place in the
// version directory.
type layout struct {
	decided bool
	top     string // "teleport" or "teleport-ent"; "" for the flat layout
}

// place returns where entry name (cleaned, non-empty) goes, or skip for an
// entry the version directory does not keep. In Teleport's layout an entry
// outside the top directory is refused.
func (l *layout) place(raw, name string) (dst string, skip bool, err error) {
	first, rest, _ := strings.Cut(name, "/")
	if !l.decided {
		l.decided = true
		for _, top := range teleportTopDirs {
			if first == top {
				l.top = top
			}
		}
	}
	if l.top == "" {
		return name, false, nil
	}
	if first != l.top {
		return "", false, unsafeEntry(raw, "outside the release's top directory %q", l.top)
	}
	switch {
	case rest == "" || rest == "install":
		return "", true, nil
	case rest == teleportExampleUnit:
		return releaseUnit, false, nil
	case rest == "examples" || strings.HasPrefix(rest, "examples/"):
		return "", true, nil
	case isTeleportDoc(rest):
		return path.Join("share", rest), false, nil
	}
	return path.Join("bin", rest), false, nil
}

func isTeleportDoc(rest string) bool {
	for _, d := range teleportDocs {
		if rest == d {
			return true
		}
	}
	return false
}

// movable reports whether an entry of this type may be placed somewhere
// else than its archive path: a symlink's relative target would then point
// elsewhere, so Teleport's layout, whose tarballs carry none, refuses them.
func (l *layout) movable(typ byte) bool {
	return l.top == "" || typ != tar.TypeSymlink
}
