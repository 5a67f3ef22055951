// Package packaging builds the .deb and .rpm of teleport-update itself with
// nfpm, a Go library, so that no external packaging tool is needed.
//
// What a package holds, and why it never fights the updater:
//   - /usr/bin/teleport-update, the binary, owned by the package. The
//     updater installs and self-updates its own copy at
//     /usr/local/bin/teleport-update (earlier on PATH) and never writes
//     under /usr/bin, so `dpkg -V` and `rpm -V` stay clean after any
//     number of self-updates.
//   - the updater's units in the distribution's unit directory, as
//     defaults: `enable` writes the host's own units to
//     /etc/systemd/system, which take precedence, and never touches these.
//   - teleport-update(8), generated from the command tree;
//   - the public keys built into the binary, as files to read and compare;
//   - an empty /etc/teleport-update/keys.d/ (root, 0755) for the
//     organisation's own keys.
//
// A package install starts and enables nothing: the admin runs
// `teleport-update enable --proxy …`, as the description says.
package packaging

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager

	"github.com/gravitational/teleport-update/internal/updater/install"
	"github.com/gravitational/teleport-update/internal/version"
)

// Formats are the package formats Build makes.
var Formats = []string{"deb", "rpm"}

// Arches are the Go architectures packages are built for.
var Arches = []string{"amd64", "arm64"}

// Name and the fields every package shares.
const (
	Name       = "teleport-update"
	Maintainer = "Teleport Update Maintainers <teleport-update@goteleport.com>"
	Homepage   = "https://github.com/gravitational/teleport-update"
	License    = "Apache-2.0"
	// BinPath is where the package puts the binary; the updater's own
	// copy lives in /usr/local/bin.
	BinPath = "/usr/bin/teleport-update"
	// KeysDir is the organisation's key directory, shipped empty.
	KeysDir = "/etc/teleport-update/keys.d"
	// PublicKeysDir holds copies of the built-in public keys.
	PublicKeysDir = "/usr/share/teleport-update/keys"
	ManPath       = "/usr/share/man/man8/teleport-update.8.gz"
	DocDir        = "/usr/share/doc/teleport-update"
)

const summary = "secure auto-updater for Teleport agents"

const description = `Secure auto-updater for Teleport agents
teleport-update keeps the Teleport agent of a host on the version its
proxy asks for, inside its group's maintenance window, installing only
releases whose SHA-256 and Sigstore signature verify against pinned keys.
Versions are installed side by side, switched with a reload that keeps
sessions, health-checked and rolled back on failure.
.
Installing this package starts and enables nothing; run
"teleport-update enable --proxy PROXY" to set up automatic updates.`

// Spec is one package to build.
type Spec struct {
	Version string    // teleport-update's version, semver without "v"
	Arch    string    // Go architecture: amd64 or arm64
	Binary  string    // the teleport-update binary built for Arch
	ManPage []byte    // teleport-update(8), roff
	Keys    fs.FS     // the built-in public keys (*.pem at its root)
	Date    time.Time // release date: file times, changelog
}

// Build writes the package of format ("deb" or "rpm") for s into outDir
// and returns its path. Files are staged in a temporary directory that is
// removed afterwards; the package itself is written to a temporary name
// and renamed, so a failed build leaves no partial package.
func Build(s Spec, format, outDir string) (string, error) {
	if _, err := version.Parse(s.Version); err != nil {
		return "", fmt.Errorf("package version: %w", err)
	}
	if !isArch(s.Arch) {
		return "", fmt.Errorf("package architecture %q: want one of %v", s.Arch, Arches)
	}
	stage, err := os.MkdirTemp("", "teleport-update-package-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	contents, err := stageContents(s, format, stage)
	if err != nil {
		return "", err
	}
	return write(info(s, contents), format, outDir)
}

func isArch(a string) bool {
	for _, x := range Arches {
		if a == x {
			return true
		}
	}
	return false
}

// info is nfpm's description of the package.
func info(s Spec, contents files.Contents) *nfpm.Info {
	return &nfpm.Info{
		Name:        Name,
		Arch:        s.Arch,
		Platform:    "linux",
		Version:     s.Version,
		Release:     "1",
		Section:     "admin",
		Priority:    "optional",
		Maintainer:  Maintainer,
		Description: description,
		Vendor:      "Gravitational",
		Homepage:    Homepage,
		License:     License,
		MTime:       s.Date,
		Overridables: nfpm.Overridables{
			Contents: contents,
			RPM:      nfpm.RPM{Summary: summary, Group: "System Environment/Base", BuildHost: "teleport-update"},
		},
	}
}

// write packages info as format into outDir under nfpm's conventional
// file name.
func write(info *nfpm.Info, format, outDir string) (string, error) {
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", fmt.Errorf("%s: %w", format, err)
	}
	info.Target = filepath.Join(outDir, pkg.ConventionalFileName(info))
	tmp, err := os.CreateTemp(outDir, ".package-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := pkg.Package(info, tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("building the %s: %w", format, err)
	}
	if err := errors.Join(tmp.Chmod(0o644), tmp.Sync(), tmp.Close()); err != nil {
		return "", err
	}
	return info.Target, os.Rename(tmp.Name(), info.Target)
}

// stageContents writes the generated files into stage and lists every
// file and directory of the package.
func stageContents(s Spec, format, stage string) (files.Contents, error) {
	unitDir := "/usr/lib/systemd/system"
	if format == "deb" {
		// Debian 12's policy (and lintian) still want units in /lib.
		unitDir = "/lib/systemd/system"
	}
	o := install.UnitOptions{UpdaterPath: BinPath}
	generated := []struct {
		name string
		data []byte
		dst  string
		only string // a format, or "" for every one
	}{
		{"teleport-update.service", install.RenderUpdaterService(o), unitDir + "/teleport-update.service", ""},
		{"teleport-update.timer", install.RenderUpdaterTimer(o), unitDir + "/teleport-update.timer", ""},
		{"teleport-update.8.gz", gzipped(s.ManPage), ManPath, ""},
		{"copyright", copyright(s.Date), DocDir + "/copyright", ""},
		{"changelog.Debian.gz", gzipped(changelog(s.Version, s.Date)), DocDir + "/changelog.Debian.gz", "deb"},
		{"lintian-overrides", []byte(lintianOverrides), "/usr/share/lintian/overrides/" + Name, "deb"},
	}
	contents := files.Contents{
		file(s.Binary, BinPath, 0o755, s.Date),
		{Destination: KeysDir, Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o755, Owner: "root", Group: "root", MTime: s.Date}},
	}
	for _, g := range generated {
		if g.only != "" && g.only != format {
			continue
		}
		src := filepath.Join(stage, g.name)
		if err := os.WriteFile(src, g.data, 0o644); err != nil {
			return nil, err
		}
		contents = append(contents, file(src, g.dst, 0o644, s.Date))
	}
	keys, err := stageKeys(s.Keys, stage, s.Date)
	if err != nil {
		return nil, err
	}
	return append(contents, keys...), nil
}

// stageKeys copies the built-in public keys into stage/keys.
func stageKeys(keys fs.FS, stage string, date time.Time) (files.Contents, error) {
	names, err := fs.Glob(keys, "*.pem")
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("no built-in public keys to package (%v)", err)
	}
	sort.Strings(names)
	dir := filepath.Join(stage, "keys")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	var out files.Contents
	for _, n := range names {
		data, err := fs.ReadFile(keys, n)
		if err != nil {
			return nil, err
		}
		src := filepath.Join(dir, n)
		if err := os.WriteFile(src, data, 0o644); err != nil {
			return nil, err
		}
		out = append(out, file(src, PublicKeysDir+"/"+n, 0o644, date))
	}
	return out, nil
}

func file(src, dst string, mode os.FileMode, date time.Time) *files.Content {
	return &files.Content{Source: src, Destination: dst, Type: files.TypeFile,
		FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root", MTime: date}}
}

// gzipped compresses data at the best level with no name and no time in
// the header, so that the same input always gives the same bytes.
func gzipped(data []byte) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// copyright is the package's machine-readable copyright file.
func copyright(date time.Time) []byte {
	return fmt.Appendf(nil, `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: teleport-update
Source: %s

Files: *
Copyright: %d Gravitational, Inc.
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License");
 you may not use this file except in compliance with the License.
 You may obtain a copy of the License at
 .
 https://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in "/usr/share/common-licenses/Apache-2.0".
`, Homepage, date.Year())
}

// lintianOverrides are the lintian findings that do not apply, each with
// its reason.
const lintianOverrides = `# Go builds the updater without cgo on purpose: it depends on no shared
# library, so a broken or half-upgraded libc can never stop the program
# that repairs the host.
teleport-update: statically-linked-binary [usr/bin/teleport-update]
# The package is published by the project, not uploaded to Debian: there is
# no ITP bug to close.
teleport-update: initial-upload-closes-no-bugs [usr/share/doc/teleport-update/changelog.Debian.gz:1]
# The word is inside a string of a library linked into the binary, not in
# the project's own text.
teleport-update: spelling-error-in-binary ment meant [usr/bin/teleport-update]
`

// changelog is the Debian changelog of a release built outside Debian.
func changelog(v string, date time.Time) []byte {
	return fmt.Appendf(nil, "%s (%s-1) unstable; urgency=medium\n\n  * Release %s of teleport-update.\n\n -- %s  %s\n",
		Name, v, v, Maintainer, date.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
}
