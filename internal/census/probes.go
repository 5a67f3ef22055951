package census

import (
	"bytes"
	"regexp"
	"slices"
	"strings"

	"github.com/gravitational/teleport-update/api"
)

// maxLibcSize caps how much of libc.so.6 is read to find its version.
const maxLibcSize = 16 << 20

// probeOSRelease returns the distribution name and version from
// etc/os-release (usr/lib/os-release when /etc has none: NAME, VERSION_ID),
// falling back to etc/lsb-release (DISTRIB_ID, DISTRIB_RELEASE).
func probeOSRelease(fsys *hostFS) (name, version string) {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if b, err := fsys.readFile(p, maxSmallFile); err == nil {
			kv := ParseOSRelease(b)
			if kv["NAME"] != "" || kv["VERSION_ID"] != "" {
				return kv["NAME"], kv["VERSION_ID"]
			}
		}
	}
	if b, err := fsys.readFile("etc/lsb-release", maxSmallFile); err == nil {
		kv := ParseOSRelease(b)
		return kv["DISTRIB_ID"], kv["DISTRIB_RELEASE"]
	}
	return "", ""
}

// ParseOSRelease parses os-release(5) / lsb-release text: KEY=value lines
// with shell-style quoting ("…" with \" \\ \$ \` escapes, '…' literal).
// Comments, blank lines, malformed lines and unterminated quotes are
// skipped; a later key wins.
func ParseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok || !isEnvKey(key) {
			continue
		}
		v, ok := unquoteShell(raw)
		if !ok {
			continue
		}
		out[key] = v
	}
	return out
}

func isEnvKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// unquoteShell decodes one os-release value.
func unquoteShell(raw string) (string, bool) {
	if raw == "" {
		return "", true
	}
	switch raw[0] {
	case '\'':
		end := strings.IndexByte(raw[1:], '\'')
		if end < 0 || strings.TrimSpace(raw[end+2:]) != "" {
			return "", false
		}
		return raw[1 : end+1], true
	case '"':
		var b strings.Builder
		for i := 1; i < len(raw); i++ {
			c := raw[i]
			switch {
			case c == '\\' && i+1 < len(raw) && strings.IndexByte("\"\\$`", raw[i+1]) >= 0:
				b.WriteByte(raw[i+1])
				i++
			case c == '"':
				if strings.TrimSpace(raw[i+1:]) != "" {
					return "", false
				}
				return b.String(), true
			default:
				b.WriteByte(c)
			}
		}
		return "", false // unterminated
	}
	if strings.ContainsAny(raw, "\"'` \t$\\") {
		return "", false
	}
	return raw, true
}

// glibcVersionPattern finds the banner glibc embeds in libc.so.6:
// "GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36."
var glibcVersionPattern = regexp.MustCompile(`GNU C Library [^\n\x00]{0,200}? version ([0-9]{1,3}\.[0-9]{1,4}(?:\.[0-9]{1,4})?)`)

// probeGlibc finds libc.so.6 in the usual library directories (and their
// multiarch subdirectories such as lib/x86_64-linux-gnu) and reads the
// version from its banner, without cgo and without running ldd. It returns
// "" on musl hosts (Alpine), where no glibc libc.so.6 exists.
func probeGlibc(fsys *hostFS) string {
	for _, base := range []string{"lib64", "lib", "usr/lib64", "usr/lib"} {
		candidates := []string{base + "/libc.so.6"}
		entries := fsys.readDir(base)
		slices.Sort(entries)
		for _, e := range entries {
			if strings.Contains(e, "-linux-gnu") {
				candidates = append(candidates, base+"/"+e+"/libc.so.6")
			}
		}
		for _, c := range candidates {
			b, err := fsys.readFile(c, maxLibcSize)
			if err != nil {
				continue
			}
			if v := GlibcVersionFromLibc(b); v != "" {
				return v
			}
		}
	}
	return ""
}

// GlibcVersionFromLibc returns the version in the "GNU C Library … version
// X.Y" banner of a libc.so.6 image, or "" when there is none (musl, or not a
// libc at all).
func GlibcVersionFromLibc(b []byte) string {
	const marker = "GNU C Library "
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(marker))
		if i < 0 {
			return ""
		}
		start := off + i
		end := min(start+len(marker)+256, len(b))
		if m := glibcVersionPattern.FindSubmatch(b[start:end]); m != nil {
			return string(m[1])
		}
		off = start + len(marker)
	}
}

// probeContainerRuntime detects Docker (/.dockerenv) and Podman
// (/run/.containerenv).
func probeContainerRuntime(fsys *hostFS) string {
	switch {
	case fsys.exists(".dockerenv"):
		return api.RuntimeDocker
	case fsys.exists("run/.containerenv"):
		return api.RuntimePodman
	}
	return ""
}

// azureAssetTag is the chassis asset tag every Azure VM carries; plain
// Hyper-V guests share Azure's "Microsoft Corporation" vendor but not this.
const azureAssetTag = "7783-7084-3265-9085-8269-3286-77"

// probeDMICloud names the cloud from the DMI data under sys/class/dmi/id,
// which needs no network.
func probeDMICloud(fsys *hostFS) string {
	read := func(name string) string {
		b, err := fsys.readFile("sys/class/dmi/id/"+name, maxSmallFile)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return CloudFromDMI(read("sys_vendor"), read("product_name"), read("bios_vendor"), read("board_vendor"), read("chassis_asset_tag"))
}

// CloudFromDMI maps DMI strings to a cloud: "Amazon EC2" vendors → aws,
// Google vendor or "Google Compute Engine" product → gcp, "Microsoft
// Corporation" with Azure's chassis asset tag → azure; otherwise "".
func CloudFromDMI(sysVendor, productName, biosVendor, boardVendor, assetTag string) string {
	for _, v := range []string{sysVendor, biosVendor, boardVendor} {
		if v == "Amazon EC2" {
			return api.CloudAWS
		}
	}
	if sysVendor == "Google" || productName == "Google Compute Engine" || biosVendor == "Google" {
		return api.CloudGCP
	}
	if sysVendor == "Microsoft Corporation" && assetTag == azureAssetTag {
		return api.CloudAzure
	}
	return ""
}
