package proxyapi

import (
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// teleportVersion and teleportConfig are shaped as `tctl get
// autoupdate_version` and `tctl get autoupdate_config` print them.
const teleportVersion = `kind: autoupdate_version
metadata:
  name: autoupdate-version
  revision: 3b1ee7fc-1b05-4bb4-8b2d-8c6b0b1d9f5e
spec:
  agents:
    mode: enabled
    schedule: regular
    start_version: v17.2.0
    target_version: v17.2.1
  tools:
    target_version: v17.2.1
version: v1
`

const teleportConfig = `kind: autoupdate_config
metadata:
  name: autoupdate-config
  revision: 0c6f2b4e-8a47-4a2e-9a55-3b0d6f0c9d12
spec:
  agents:
    mode: enabled
    strategy: halt-on-error
    schedules:
      regular:
      - name: dev
        days: ["Mon", "Tue", "Wed", "Thu"]
        start_hour: 4
        canary_count: 2
      - name: staging
        days: ["*"]
        start_hour: 14
      - name: prod
        days: ["Monday", "Thursday"]
        start_hour: 14
        wait_hours: 24
        canary_count: 5
  tools:
    mode: enabled
version: v1
`

// TestParseTeleportResources reads the two documents tctl writes, one after
// the other, as one policy: versions lose their "v", days and start_hour
// become one-hour windows, canary_count and wait_hours carry over.
func TestParseTeleportResources(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(teleportVersion + "---\n" + teleportConfig))
	if err != nil {
		t.Fatal(err)
	}
	if p.TargetVersion.String() != "17.2.1" || p.StartVersion.String() != "17.2.0" || p.Strategy != rollout.HaltOnError ||
		p.Revision != "3b1ee7fc-1b05-4bb4-8b2d-8c6b0b1d9f5e" || p.Mode != ModeEnabled || !p.Rollout() {
		t.Errorf("policy = %+v", p)
	}
	want := []Group{
		{Name: "dev", Window: "0 4 * * Mon,Tue,Wed,Thu", Duration: time.Hour, CanaryCount: 2},
		{Name: "staging", Window: "0 14 * * *", Duration: time.Hour},
		{Name: "prod", Window: "0 14 * * Mon,Thu", Duration: time.Hour, CanaryCount: 5, Wait: 24 * time.Hour},
	}
	if len(p.Groups) != len(want) {
		t.Fatalf("groups = %+v", p.Groups)
	}
	for i, g := range p.Groups {
		w := want[i]
		if g.Name != w.Name || g.Window != w.Window || g.Duration != w.Duration || g.CanaryCount != w.CanaryCount || g.Wait != w.Wait {
			t.Errorf("group %d = %+v; want %+v", i, g, w)
		}
	}
	// A Thursday at 14:30 UTC: prod's window is open, dev's is not.
	thu := time.Date(2026, 12, 3, 14, 30, 0, 0, time.UTC)
	if !p.Groups[2].Schedule.Open(thu) || p.Groups[0].Schedule.Open(thu) {
		t.Error("days and start_hour did not become the right windows")
	}
	plan := p.Plan()
	if plan.Strategy != rollout.HaltOnError || plan.HaltPercent != DefaultHaltPercent || plan.HaltMinHosts != DefaultHaltMinHosts ||
		len(plan.Groups) != 3 || plan.Groups[2].Wait != 24*time.Hour || plan.Groups[0].CanaryCount != 2 {
		t.Errorf("plan = %+v", plan)
	}
	// The documents may come in either order.
	if _, err := ParsePolicy([]byte(teleportConfig + "---\n" + teleportVersion)); err != nil {
		t.Errorf("config first: %v", err)
	}
}

// TestParseTeleportTimeBased: maintenance_window_duration sets the windows'
// length for time-based rollouts.
func TestParseTeleportTimeBased(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(teleportConfig, "strategy: halt-on-error", "strategy: time-based\n    maintenance_window_duration: 2h0m0s", 1)
	cfg = strings.Replace(cfg, "        wait_hours: 24\n", "", 1)
	p, err := ParsePolicy([]byte(teleportVersion + "---\n" + cfg))
	if err != nil {
		t.Fatal(err)
	}
	if p.Strategy != rollout.TimeBased || p.Groups[0].Duration != 2*time.Hour {
		t.Errorf("policy = %+v", p)
	}
}

// TestParseTeleportModes combines the two documents' modes as Teleport
// does: disabled wins over suspended, which wins over enabled.
func TestParseTeleportModes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ ver, cfg, want string }{
		{"enabled", "enabled", "enabled"}, {"enabled", "suspended", "suspended"}, {"disabled", "enabled", "disabled"},
		{"suspended", "disabled", "disabled"}, {"", "suspended", "suspended"}, {"enabled", "", "enabled"},
	} {
		ver := strings.Replace(teleportVersion, "    mode: enabled\n", modeLine(tt.ver), 1)
		cfg := strings.Replace(teleportConfig, "    mode: enabled\n", modeLine(tt.cfg), 1)
		p, err := ParsePolicy([]byte(ver + "---\n" + cfg))
		if err != nil {
			t.Fatalf("%s + %s: %v", tt.ver, tt.cfg, err)
		}
		if string(p.Mode) != tt.want {
			t.Errorf("%s + %s = %s; want %s", tt.ver, tt.cfg, p.Mode, tt.want)
		}
	}
}

func modeLine(m string) string {
	if m == "" {
		return ""
	}
	return "    mode: " + m + "\n"
}

// TestParseNativeRollout: this project's resource takes the rollout fields
// itself, and a leading v on versions.
func TestParseNativeRollout(t *testing.T) {
	t.Parallel()
	doc := strings.Replace(validPolicy, "mode: enabled", "mode: enabled\n    start_version: v16.4.0\n    strategy: time-based\n    halt_failure_percent: 12.5\n    halt_min_hosts: 40", 1)
	doc = strings.Replace(doc, "duration: 1h", "duration: 1h\n        canary_count: 3", 1)
	doc = strings.Replace(doc, "16.4.6", "v16.4.6", 1)
	p, err := ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.TargetVersion.String() != "16.4.6" || p.StartVersion.String() != "16.4.0" || p.Strategy != rollout.TimeBased ||
		p.HaltPercent != 12.5 || p.HaltMinHosts != 40 || p.Groups[0].CanaryCount != 3 || p.Groups[1].CanaryCount != 0 {
		t.Errorf("policy = %+v", p)
	}
	plain, err := ParsePolicy([]byte(validPolicy))
	if err != nil || plain.Rollout() || plain.StartVersion != nil {
		t.Errorf("a policy without start_version runs a rollout: %+v, %v", plain, err)
	}
}

// TestParseTeleportErrors: each wrong pair of documents is refused naming
// the document and field.
func TestParseTeleportErrors(t *testing.T) {
	t.Parallel()
	pair := func(ver, cfg string) string { return ver + "---\n" + cfg }
	rep := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			panic("test edit: " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
	tests := []struct {
		name, doc, field, want string
	}{
		{"two configs", pair(teleportConfig, teleportConfig), "autoupdate_config kind", "two autoupdate_config documents"},
		{"unknown kind", pair(teleportVersion, rep(teleportConfig, "kind: autoupdate_config", "kind: cluster_maintenance_config")), "kind", `or "autoupdate_config"`},
		{"target in config", pair(teleportVersion, rep(teleportConfig, "    strategy:", "    target_version: v1.0.0\n    strategy:")), "autoupdate_config spec.agents.target_version", "belongs in the autoupdate_version"},
		{"groups twice", pair(rep(teleportVersion, "    schedule: regular\n", "    schedule: regular\n    groups:\n      - name: a\n        window: \"0 2 * * *\"\n        duration: 1h\n"), teleportConfig), "autoupdate_config spec.agents.schedules", "keep one"},
		{"strategy twice", pair(rep(teleportVersion, "    schedule: regular\n", "    schedule: regular\n    strategy: time-based\n"), teleportConfig), "autoupdate_config spec.agents.strategy", "both documents"},
		{"window duration with halt-on-error", pair(teleportVersion, rep(teleportConfig, "    strategy: halt-on-error", "    strategy: halt-on-error\n    maintenance_window_duration: 1h")), "autoupdate_config spec.agents.maintenance_window_duration", "time-based only"},
		{"bad window duration", pair(teleportVersion, rep(teleportConfig, "    strategy: halt-on-error", "    strategy: time-based\n    maintenance_window_duration: soon")), "autoupdate_config spec.agents.maintenance_window_duration", "not a Go duration"},
		{"bad mode in config", pair(teleportVersion, rep(teleportConfig, "    mode: enabled", "    mode: paused")), "autoupdate_config spec.agents.mode", "not one of"},
		{"unknown config field", pair(teleportVersion, rep(teleportConfig, "    strategy:", "    stratgy: x\n    strategy:")), "", "field stratgy not found"},
		{"config wrong version", pair(teleportVersion, rep(teleportConfig, "version: v1", "version: v2")), "autoupdate_config version", `want "v1"`},
		{"canary over cap", pair(teleportVersion, rep(teleportConfig, "canary_count: 5", "canary_count: 6")), "autoupdate_config spec.agents.schedules.regular[2].canary_count", "outside [0, 5]"},
		{"no schedules", pair(teleportVersion, rep(teleportConfig, "    schedules:\n", "    x_schedules:\n")), "", "field x_schedules not found"},
		{"version only", teleportVersion, "spec.agents.groups", "autoupdate_config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkPolicyError(t, tt.doc, tt.field, 0, tt.want)
		})
	}
}
