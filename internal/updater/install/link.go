package install

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// legacyLinkPrefixes are how links in /usr/local/bin started when their
// target was not computed from the real link directory, or when earlier
// builds kept the versions in Teleport's data directory. Such a link is
// still ours: Link replaces it when it differs from the computed target.
var legacyLinkPrefixes = []string{
	"../../../" + versionsRel + "/",
	"../../../" + legacyDataDirRel + "/" + versionsName + "/",
}

// notLinked are binaries a release may carry that Link leaves alone:
// /usr/local/bin/teleport-update is the updater itself, installed and
// replaced by its own signed artifact; linking an agent release's copy
// over it would let an agent rollback downgrade the updater, or (as a
// regular file) make every update fail with ErrNotOurs.
var notLinked = []string{updaterName}

// updaterName is the updater's binary name, in /usr/local/bin as in a
// release.
const updaterName = "teleport-update"

// linkLayout is where the links live and how they reach the versions,
// with every symlink on the way resolved inside the root. Links are
// relative, so the tree stays valid under any root; the relative path is
// computed from the links' real directory, because ".." in a link target
// climbs from where the link really is: with /usr/local a symlink to
// /opt/vendor/local, a fixed "../../../var/lib/…" would land in /opt.
type linkLayout struct {
	root     string
	dir      string // the real directory of the links: usr/local/bin resolved
	versions string // the real versions directory
	prefix   string // relative path from dir to versions, ending in "/"
	// legacyPrefix is the relative path from dir to the versions directory
	// of earlier builds (in Teleport's data directory), ending in "/".
	legacyPrefix string
}

func (t *Tree) linkLayout() (linkLayout, error) {
	dir, err := resolveIn(t.Root, binDirRel)
	if err != nil {
		return linkLayout{}, fmt.Errorf("resolve link directory: %w", err)
	}
	versions, err := resolveIn(t.Root, versionsRel)
	if err != nil {
		return linkLayout{}, fmt.Errorf("resolve versions directory: %w", err)
	}
	rel, err := filepath.Rel(dir, versions)
	if err != nil {
		return linkLayout{}, fmt.Errorf("link %s to %s: %w", dir, versions, err)
	}
	legacy, err := resolveIn(t.Root, legacyDataDirRel+"/"+versionsName)
	if err != nil {
		return linkLayout{}, fmt.Errorf("resolve versions directory: %w", err)
	}
	legacyRel, err := filepath.Rel(dir, legacy)
	if err != nil {
		return linkLayout{}, fmt.Errorf("link %s to %s: %w", dir, legacy, err)
	}
	return linkLayout{root: t.Root, dir: dir, versions: versions, prefix: filepath.ToSlash(rel) + "/",
		legacyPrefix: filepath.ToSlash(legacyRel) + "/"}, nil
}

// target is the symlink target for binary name of version v.
func (l linkLayout) target(v, name string) string {
	return l.prefix + v + "/bin/" + name
}

// ourVersion returns the version a symlink target points to when it is a
// link of ours for binary name.
func (l linkLayout) ourVersion(name, target string) (string, bool) {
	for _, prefix := range append([]string{l.prefix, l.legacyPrefix}, legacyLinkPrefixes...) {
		rest, ok := strings.CutPrefix(target, prefix)
		if !ok {
			continue
		}
		v, tail, ok := strings.Cut(rest, "/")
		if ok && tail == "bin/"+name && ValidateVersion(v) == nil {
			return v, true
		}
	}
	return "", false
}

// checkLinks makes sure that each link for bins really reaches version v's
// binary of the same name: the filesystem, not the target text, decides.
func (l linkLayout) checkLinks(v string, bins []string) error {
	for _, name := range bins {
		link := filepath.Join(l.dir, name)
		want := filepath.Join(l.versions, v, "bin", name)
		wantFi, err := os.Stat(want)
		if err != nil {
			return fmt.Errorf("check link %s: %w", link, err)
		}
		if got, err := os.Stat(link); err == nil && os.SameFile(got, wantFi) {
			continue
		}
		where := "?"
		if rel, err := filepath.Rel(l.root, link); err == nil {
			where, _ = resolveIn(l.root, rel)
		}
		return fmt.Errorf("check link %s: it resolves to %s, not to %s", link, where, want)
	}
	return nil
}

// resolveIn returns the real path of root/rel, resolving symlinks as the
// kernel would if root were "/": an absolute target starts again at root,
// and ".." never climbs above it. Components that do not exist are kept as
// they are. At most maxSymlinkHops symlinks are followed.
func resolveIn(root, rel string) (string, error) {
	root = filepath.Clean(root)
	cur, hops := root, 0
	todo := strings.Split(filepath.ToSlash(rel), "/")
	for len(todo) > 0 {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if cur != root {
				cur = filepath.Dir(cur)
			}
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			cur = next
			continue
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink == 0:
			cur = next
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return "", fmt.Errorf("resolve %s under %s: too many levels of symbolic links", rel, root)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = root
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, nil
}

// teleportBinaries are the programs a Teleport release ships in bin/. They
// are linked whatever their content.
var teleportBinaries = []string{"teleport", "tctl", "tsh", "tbot", "fdpass-teleport"}

// updaterBinary is never linked from a release: the updater installs and
// updates its own binary.
const updaterBinary = "teleport-update"

// Binaries lists the executables of versions/<v>/bin that get linked,
// sorted: Teleport's programs (teleportBinaries), and any other executable
// regular file (or symlink to one inside the version) that is not a script,
// which is Teleport's own rule. Scripts such as an install helper, hidden
// names and teleport-update are left out.
func (t *Tree) Binaries(v string) ([]string, error) {
	if err := ValidateVersion(v); err != nil {
		return nil, err
	}
	out, err := linkable(filepath.Join(t.VersionDir(v), "bin"))
	if err != nil {
		return nil, fmt.Errorf("list binaries of version %s: %w", v, err)
	}
	return out, nil
}

// linkable lists the executables of dir that get linked (see Binaries).
func linkable(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // dangling symlink
		}
		if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 || e.Name() == updaterBinary {
			continue
		}
		if slices.Contains(teleportBinaries, e.Name()) || !isScript(filepath.Join(dir, e.Name())) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// isScript reports whether the file at p starts with "#!". A file that
// cannot be read counts as a script: it is not linked.
func isScript(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return true
	}
	defer f.Close()
	var magic [2]byte
	n, _ := io.ReadFull(f, magic[:])
	return n == 2 && string(magic[:]) == "#!"
}

// ourLinks maps binary name to version for every link of ours in the
// link directory.
func (t *Tree) ourLinks() (map[string]string, error) {
	l, err := t.linkLayout()
	if err != nil {
		return nil, err
	}
	return l.ourLinks()
}

func (l linkLayout) ourLinks() (map[string]string, error) {
	entries, err := os.ReadDir(l.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	links := make(map[string]string)
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		target, err := os.Readlink(filepath.Join(l.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read link: %w", err)
		}
		if v, ok := l.ourVersion(e.Name(), target); ok {
			links[e.Name()] = v
		}
	}
	return links, nil
}

// LinkedVersion returns the version /usr/local/bin/teleport links to, or,
// when that is not a link of ours, the lowest version any link of ours
// points to; "" when there is no link of ours.
func (t *Tree) LinkedVersion() (string, error) {
	links, err := t.ourLinks()
	if err != nil {
		return "", err
	}
	if v, ok := links["teleport"]; ok {
		return v, nil
	}
	vs, err := t.LinkedVersions()
	if err != nil || len(vs) == 0 {
		return "", err
	}
	return vs[0], nil
}

// LinkedVersions returns every version any link of ours points to, sorted.
// More than one means a link swap was interrupted.
func (t *Tree) LinkedVersions() ([]string, error) {
	links, err := t.ourLinks()
	if err != nil {
		return nil, err
	}
	var vs []string
	for _, v := range links {
		if !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	sortVersions(vs)
	return vs, nil
}

// linkStep records one change in the link directory and how to undo it.
type linkStep struct {
	path       string
	prevTarget string // symlink target before, "" if none
	backup     string // hard link holding an overwritten regular file
}

// Link points /usr/local/bin/<name> at versions/<v>/bin/<name> for every
// binary of version v (except teleport-update, see notLinked), replacing
// each link atomically (a new symlink under a temporary name renamed over
// the old one), and removes links of ours for binaries v lacks. The links
// go into /usr/local/bin as resolved inside the root, with targets relative
// to that real directory (see linkLayout).
//
// Before changing anything, every path is checked: a regular file or a
// symlink that is not ours fails with ErrNotOurs unless overwrite; a
// directory always fails. An overwritten regular file is kept as a hidden
// hard link next to it until revert or the next CleanLeftovers. After the
// swap, each link must reach v's binary on the filesystem; if one does
// not, Link fails naming it and where it leads.
//
// revert restores the link directory exactly as it was (links, their
// targets and overwritten files). If Link fails midway it reverts what it
// did itself. Outcomes: ErrInvalidVersion, ErrVersionNotInstalled, ErrNotOurs, a
// link that does not reach v's binary.
func (t *Tree) Link(v string, overwrite bool) (revert func() error, err error) {
	if err := ValidateVersion(v); err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	if _, ok, err := t.Installed(v); err != nil {
		return nil, fmt.Errorf("link: %w", err)
	} else if !ok {
		return nil, fmt.Errorf("link version %s: %w", v, ErrVersionNotInstalled)
	}
	bins, err := t.Binaries(v)
	if err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	if !slices.Contains(bins, "teleport") {
		return nil, fmt.Errorf("link version %s: %w: no bin/teleport", v, ErrVersionNotInstalled)
	}
	bins = slices.DeleteFunc(bins, func(name string) bool { return slices.Contains(notLinked, name) })
	l, err := t.linkLayout()
	if err != nil {
		return nil, fmt.Errorf("link version %s: %w", v, err)
	}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("link version %s: %w", v, err)
	}
	old, err := l.ourLinks()
	if err != nil {
		return nil, fmt.Errorf("link version %s: %w", v, err)
	}

	// Plan and check everything before touching anything.
	type change struct {
		name, target string // target "" means remove
		step         linkStep
		replaceFile  bool
	}
	var plan []change
	for _, name := range bins {
		p := filepath.Join(l.dir, name)
		c := change{name: name, target: l.target(v, name), step: linkStep{path: p}}
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("link version %s: %w", v, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, fmt.Errorf("link version %s: %w", v, err)
			}
			if target == c.target {
				continue // already there
			}
			if _, ours := l.ourVersion(name, target); !ours && !overwrite {
				return nil, fmt.Errorf("link version %s: %s is a symlink to %q: %w (use overwrite to replace it)", v, p, target, ErrNotOurs)
			}
			c.step.prevTarget = target
		case fi.Mode().IsRegular():
			if !overwrite {
				return nil, fmt.Errorf("link version %s: %s is a regular file: %w (use overwrite to replace it)", v, p, ErrNotOurs)
			}
			c.replaceFile = true
		default:
			return nil, fmt.Errorf("link version %s: %s is a %s: %w", v, p, fi.Mode().Type(), ErrNotOurs)
		}
		plan = append(plan, c)
	}
	for name := range old {
		if slices.Contains(bins, name) {
			continue
		}
		p := filepath.Join(l.dir, name)
		target, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("link version %s: %w", v, err)
		}
		plan = append(plan, change{name: name, step: linkStep{path: p, prevTarget: target}})
	}

	var done []linkStep
	revert = func() error {
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			if err := undoLinkStep(done[i]); err != nil {
				errs = append(errs, err)
			}
		}
		done = nil
		if err := syncDir(l.dir); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("revert links: %w", err)
		}
		return nil
	}
	fail := func(err error) (func() error, error) {
		if rerr := revert(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("link version %s: %w", v, err)
	}
	for _, c := range plan {
		if c.replaceFile {
			c.step.backup = tmpSibling(c.step.path, "replaced")
			_ = os.Remove(c.step.backup)
			if err := os.Link(c.step.path, c.step.backup); err != nil {
				return fail(fmt.Errorf("keep %s for revert: %w", c.step.path, err))
			}
		}
		if c.target == "" {
			if err := os.Remove(c.step.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fail(err)
			}
		} else if err := swapSymlink(c.step.path, c.target); err != nil {
			if c.step.backup != "" {
				_ = os.Remove(c.step.backup)
			}
			return fail(err)
		}
		done = append(done, c.step)
		t.step(StepLinkBinary)
	}
	if err := syncDir(l.dir); err != nil {
		return fail(err)
	}
	if err := l.checkLinks(v, bins); err != nil {
		return fail(err)
	}
	return revert, nil
}

func undoLinkStep(s linkStep) error {
	switch {
	case s.backup != "":
		if err := os.Rename(s.backup, s.path); err != nil {
			return fmt.Errorf("restore %s: %w", s.path, err)
		}
	case s.prevTarget != "":
		return swapSymlink(s.path, s.prevTarget)
	default:
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", s.path, err)
		}
	}
	return nil
}

// tmpSibling names a hidden temporary file next to p that CleanLeftovers
// recognises.
func tmpSibling(p, what string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+tmpMarker+"-"+what)
}

// swapSymlink atomically makes p a symlink to target.
func swapSymlink(p, target string) error {
	tmp := tmpSibling(p, "link")
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("create link %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("swap link %s: %w", p, err)
	}
	return nil
}

// Unlink removes every link of ours from /usr/local/bin and returns the
// removed paths. Files and links that are not ours are left alone.
func (t *Tree) Unlink() (removed []string, err error) {
	l, err := t.linkLayout()
	if err != nil {
		return nil, fmt.Errorf("unlink: %w", err)
	}
	links, err := l.ourLinks()
	if err != nil {
		return nil, fmt.Errorf("unlink: %w", err)
	}
	names := make([]string, 0, len(links))
	for name := range links {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := filepath.Join(l.dir, name)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("unlink: %w", err)
		}
		removed = append(removed, p)
	}
	if len(removed) > 0 {
		if err := syncDir(l.dir); err != nil {
			return removed, fmt.Errorf("unlink: %w", err)
		}
	}
	return removed, nil
}
