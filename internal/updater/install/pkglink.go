package install

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// PackageBinRel is where Teleport's own .deb and .rpm packages put their
// binaries, relative to the root (Teleport 17 and later): they do not own
// /usr/local/bin, and their postinst runs `teleport-update link-package`
// to link the binaries there when no managed version is linked.
const PackageBinRel = "opt/teleport/system/bin"

// ErrLinked: a link in the way points at something else (a managed
// version); the package's binaries are not linked.
var ErrLinked = errors.New("another version is linked")

// PackageBinDir is <root>/opt/teleport/system/bin.
func (t *Tree) PackageBinDir() string { return t.path(PackageBinRel) }

// HasPackage reports whether a package install of Teleport is on the host:
// an executable teleport in PackageBinDir, or the older packages' layout
// (PackagedAgent).
func (t *Tree) HasPackage() bool {
	fi, err := os.Stat(filepath.Join(t.PackageBinDir(), "teleport"))
	if err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return true
	}
	_, ok := t.PackagedAgent()
	return ok
}

// pkgLink is one link of a package binary: its path and the target it
// gets.
type pkgLink struct{ path, target string }

// packageLinks are the links of the package's binaries: relative targets
// from the real link directory, as for versions.
func (t *Tree) packageLinks() ([]pkgLink, error) {
	bins, err := linkable(t.PackageBinDir())
	if err != nil {
		return nil, fmt.Errorf("list the package's binaries: %w", err)
	}
	l, err := t.linkLayout()
	if err != nil {
		return nil, err
	}
	pkg, err := resolveIn(t.Root, PackageBinRel)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(l.dir, pkg)
	if err != nil {
		return nil, err
	}
	var out []pkgLink
	for _, b := range bins {
		out = append(out, pkgLink{path: filepath.Join(l.dir, b), target: filepath.Join(rel, b)})
	}
	return out, nil
}

// isPackageLink reports whether the link at p (in the real link
// directory) points at the package's binary of its name: the relative
// target LinkPackage makes, or Teleport's absolute one.
func (t *Tree) isPackageLink(p, target string) bool {
	name := filepath.Base(p)
	if target == "/"+PackageBinRel+"/"+name {
		return true
	}
	pkg, err := resolveIn(t.Root, PackageBinRel)
	return err == nil && !filepath.IsAbs(target) && filepath.Join(filepath.Dir(p), target) == filepath.Join(pkg, name)
}

// LinkPackage links the package's binaries into /usr/local/bin where no
// link is. Before changing anything every path is checked: a link of the
// package's is kept, a link to anything else fails with ErrLinked, a file
// that is not a link with ErrNotOurs; so nothing is linked when a managed
// version is. It returns the links it made.
func (t *Tree) LinkPackage() (linked []string, err error) {
	links, err := t.packageLinks()
	if err != nil {
		return nil, fmt.Errorf("link the package: %w", err)
	}
	var todo []pkgLink
	for _, l := range links {
		target, err := os.Readlink(l.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			todo = append(todo, l)
		case err != nil:
			return nil, fmt.Errorf("link the package: %s is not a link: %w", l.path, ErrNotOurs)
		case !t.isPackageLink(l.path, target):
			return nil, fmt.Errorf("link the package: %s points at %s: %w", l.path, target, ErrLinked)
		}
	}
	if len(links) == 0 {
		return nil, fmt.Errorf("link the package: no binaries in %s", t.PackageBinDir())
	}
	if err := makePublicDir(filepath.Dir(links[0].path)); err != nil {
		return nil, fmt.Errorf("link the package: %w", err)
	}
	for _, l := range todo {
		if err := os.Symlink(l.target, l.path); err != nil {
			return linked, fmt.Errorf("link the package: %w", err)
		}
		linked = append(linked, l.path)
	}
	return linked, nil
}

// UnlinkPackage removes every link in /usr/local/bin that points at a
// binary of the package, and returns them. Other files are left alone.
func (t *Tree) UnlinkPackage() (removed []string, err error) {
	l, err := t.linkLayout()
	if err != nil {
		return nil, fmt.Errorf("unlink the package: %w", err)
	}
	entries, err := os.ReadDir(l.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("unlink the package: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(l.dir, e.Name())
		target, err := os.Readlink(p)
		if err != nil || !t.isPackageLink(p, target) {
			continue
		}
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("unlink the package: %w", err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// PackageLinked reports whether any link in /usr/local/bin points at the
// package's binaries.
func (t *Tree) PackageLinked() bool {
	l, err := t.linkLayout()
	if err != nil {
		return false
	}
	entries, _ := os.ReadDir(l.dir)
	for _, e := range entries {
		p := filepath.Join(l.dir, e.Name())
		if target, err := os.Readlink(p); err == nil && t.isPackageLink(p, target) {
			return true
		}
	}
	return false
}
