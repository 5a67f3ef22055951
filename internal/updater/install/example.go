package install

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gravitational/teleport-update/internal/capread"
)

// maxExampleUnit caps the release's own unit file read from a version.
const maxExampleUnit = 64 << 10

// ReleaseUnit returns the systemd unit version v's release carries
// (Teleport's examples/systemd/teleport.service, kept as
// lib/systemd/system/teleport.service), or nil when it has none or it
// cannot be read: the built-in unit is used then.
func (t *Tree) ReleaseUnit(v string) []byte {
	if err := ValidateVersion(v); err != nil {
		return nil
	}
	p := filepath.Join(t.VersionDir(v), releaseUnit)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	b, err := capread.RegularFile(p, maxExampleUnit)
	if err != nil {
		return nil
	}
	return b
}

// unitKeys the agent unit always sets itself, whatever the release's unit
// says: what the agent runs and how it is reloaded and followed.
var unitKeys = []string{"ExecStart", "ExecReload", "PIDFile"}

// renderFromExample renders teleport.service from the release's own unit:
// its [Unit], [Service] and [Install] lines are kept, except that the
// first line is the marker, Description names the version, and
// ExecStart, ExecReload and PIDFile are this project's (the link, the
// agent's options and the PID file; see RenderAgentService). A [Service]
// without Restart= gets Restart=always (the health check counts restarts)
// and a unit without [Install] gets WantedBy=multi-user.target. It reports
// false for a unit it does not understand (no [Service] section, a line
// continued with a backslash, another section), which then gets the
// built-in unit.
func renderFromExample(o UnitOptions, example []byte) ([]byte, bool) {
	sections, ok := parseUnit(example)
	if !ok || sections["Service"] == nil {
		return nil, false
	}
	argv := agentExecStart(o)
	service := []string{
		"ExecStart=" + execLine(argv[0], argv[1:]...),
		`ExecReload=/bin/sh -c "kill -HUP $MAINPID"`,
		"PIDFile=" + AgentPIDFile,
	}
	hasRestart := false
	for _, l := range sections["Service"] {
		k := unitKey(l)
		hasRestart = hasRestart || k == "Restart"
		if !slices.Contains(unitKeys, k) {
			service = append(service, l)
		}
	}
	if !hasRestart {
		service = append(service, "Restart=always", "RestartSec=5")
	}
	unit := []string{fmt.Sprintf("Description=Teleport Service (version %s)", o.Version)}
	for _, l := range sections["Unit"] {
		if unitKey(l) != "Description" {
			unit = append(unit, l)
		}
	}
	install := sections["Install"]
	if len(install) == 0 {
		install = []string{"WantedBy=multi-user.target"}
	}
	var b bytes.Buffer
	b.WriteString(unitMarker + "\n")
	for _, s := range []struct {
		name  string
		lines []string
	}{{"Unit", unit}, {"Service", service}, {"Install", install}} {
		fmt.Fprintf(&b, "[%s]\n%s\n\n", s.name, strings.Join(s.lines, "\n"))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), true
}

// parseUnit splits a unit file into the setting lines of its [Unit],
// [Service] and [Install] sections, comments and blank lines dropped. It
// reports false for anything else: another section, a setting before the
// first section, a line without "=", or a continued line.
func parseUnit(data []byte) (map[string][]string, bool) {
	sections := map[string][]string{}
	current := ""
	for _, raw := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(raw)
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
			continue
		case strings.HasSuffix(l, `\`):
			return nil, false
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			current = l[1 : len(l)-1]
			if !slices.Contains([]string{"Unit", "Service", "Install"}, current) {
				return nil, false
			}
			if sections[current] == nil {
				sections[current] = []string{}
			}
		case current == "" || !strings.Contains(l, "="):
			return nil, false
		default:
			sections[current] = append(sections[current], l)
		}
	}
	return sections, true
}

// unitKey is the key of a setting line "Key=value".
func unitKey(l string) string {
	k, _, _ := strings.Cut(l, "=")
	return strings.TrimSpace(k)
}
