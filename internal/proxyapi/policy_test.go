package proxyapi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validPolicy = `kind: autoupdate_version
version: v1
spec:
  agents:
    target_version: 16.4.6
    mode: enabled
    schedule: regular
    jitter_seconds: 60
    groups:
      - name: staging
        window: "0 2 * * *"
        duration: 1h
      - name: production
        window: "0 4 * * Tue,Thu"
        duration: 2h
`

func TestParsePolicyValid(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(validPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if p.TargetVersion.String() != "16.4.6" || p.Mode != ModeEnabled || p.Schedule != ScheduleRegular || p.Jitter != time.Minute {
		t.Errorf("ParsePolicy = %+v", p)
	}
	if len(p.Groups) != 2 || p.Groups[0].Name != "staging" || p.Groups[1].Duration != 2*time.Hour {
		t.Errorf("groups = %+v", p.Groups)
	}
	for _, tt := range []struct{ ask, want string }{{"staging", "staging"}, {"production", "production"}, {"", "production"}, {"nope", "production"}, {"Staging", "production"}} {
		if got := p.Group(tt.ask).Name; got != tt.want {
			t.Errorf("Group(%q) = %q; want %q", tt.ask, got, tt.want)
		}
	}
}

// TestExampleResource keeps resources/autoupdate_version.yaml working.
func TestExampleResource(t *testing.T) {
	t.Parallel()
	p, _, err := LoadPolicy(filepath.Join("..", "..", "resources", "autoupdate_version.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Groups) == 0 {
		t.Fatal("the example has no groups")
	}
}

func TestParsePolicyErrors(t *testing.T) {
	t.Parallel()
	// edit replaces old with new in validPolicy (old must be present).
	edit := func(pairs ...string) string {
		s := validPolicy
		for i := 0; i < len(pairs); i += 2 {
			if !strings.Contains(s, pairs[i]) {
				panic("test edit: " + pairs[i] + " not in policy")
			}
			s = strings.Replace(s, pairs[i], pairs[i+1], 1)
		}
		return s
	}
	tests := []struct {
		name  string
		doc   string
		field string // FieldError.Field; "" for a YAML-level error
		line  int
		want  string // substring of the message
	}{
		{"empty", "", "", 0, "empty"},
		{"not yaml", "kind: [", "", 0, "line"},
		{"unknown top field", edit("version: v1", "version: v1\nextra: 1"), "", 0, "field extra not found in the top level"},
		{"unknown agents field (typo)", edit("jitter_seconds: 60", "jiter_seconds: 60"), "", 0, "line 8: field jiter_seconds not found in spec.agents"},
		{"unknown group field", edit("duration: 1h", "duration: 1h\n        durration: 2h"), "", 0, "field durration not found in spec.agents.groups[]"},
		{"duplicate key", edit("mode: enabled", "mode: enabled\n    mode: disabled"), "", 0, "already defined"},
		{"two documents", validPolicy + "---\n" + validPolicy, "kind", 17, "two autoupdate_version documents"},
		{"three documents", validPolicy + "---\n" + teleportConfig + "---\n" + teleportConfig, "", 0, "more than 2 YAML documents"},
		{"wrong kind", edit("kind: autoupdate_version", "kind: autoupdate_config"), "kind", 1, "want \"autoupdate_version\""},
		{"wrong version", edit("version: v1", "version: v2"), "version", 2, "want \"v1\""},
		{"no spec", "kind: autoupdate_version\nversion: v1\n", "spec.agents", 0, "required"},
		{"missing target", edit("    target_version: 16.4.6\n", ""), "spec.agents.target_version", 4, "required"},
		{"double v", edit("16.4.6", "vv16.4.6"), "spec.agents.target_version", 5, "not a semantic version"},
		{"partial version", edit("16.4.6", "16.4"), "spec.agents.target_version", 5, "not a semantic version"},
		{"garbage version", edit("16.4.6", "latest"), "spec.agents.target_version", 5, "not a semantic version"},
		{"bad mode", edit("mode: enabled", "mode: on"), "spec.agents.mode", 6, "not one of"},
		{"missing mode", edit("    mode: enabled\n", ""), "spec.agents.mode", 4, "required"},
		{"bad schedule", edit("schedule: regular", "schedule: weekly"), "spec.agents.schedule", 7, "not one of"},
		{"negative jitter", edit("jitter_seconds: 60", "jitter_seconds: -1"), "spec.agents.jitter_seconds", 8, "outside"},
		{"huge jitter", edit("jitter_seconds: 60", "jitter_seconds: 3601"), "spec.agents.jitter_seconds", 8, "outside"},
		{"jitter as string", edit("jitter_seconds: 60", "jitter_seconds: 60s"), "", 0, "line 8"},
		{"jitter longer than window", edit("jitter_seconds: 60", "jitter_seconds: 3600", "duration: 2h", "duration: 30m"), "spec.agents.groups[1].duration", 15, "longer than this group's window"},
		{"no groups with regular", edit(validPolicy[strings.Index(validPolicy, "    groups:"):], ""), "spec.agents.groups", 4, "at least one group"},
		{"duplicate group", edit("name: production", "name: staging"), "spec.agents.groups[1].name", 13, "already defined by groups[0]"},
		{"empty group name", edit("name: production", "name: \"\""), "spec.agents.groups[1].name", 13, "empty"},
		{"bad group name", edit("name: production", "name: prod/eu"), "spec.agents.groups[1].name", 13, "characters outside"},
		{"long group name", edit("name: production", "name: "+strings.Repeat("p", MaxNameLen+1)), "spec.agents.groups[1].name", 13, "longer than"},
		{"invalid cron", edit(`"0 4 * * Tue,Thu"`, `"0 4 * * Tue,Thr"`), "spec.agents.groups[1].window", 14, "cron expression"},
		{"cron with time zone", edit(`"0 2 * * *"`, `"TZ=Europe/Paris 0 2 * * *"`), "spec.agents.groups[0].window", 11, "UTC"},
		{"missing window", edit("        window: \"0 2 * * *\"\n", ""), "spec.agents.groups[0].window", 10, "required"},
		{"zero duration", edit("duration: 1h", "duration: 0s"), "spec.agents.groups[0].duration", 12, "not positive"},
		{"negative duration", edit("duration: 1h", "duration: -1h"), "spec.agents.groups[0].duration", 12, "not positive"},
		{"duration without unit", edit("duration: 1h", "duration: 60"), "spec.agents.groups[0].duration", 12, "not a Go duration"},
		{"duration too long", edit("duration: 1h", "duration: 200h"), "spec.agents.groups[0].duration", 12, "longer than"},
		{"strategy without start_version", edit("mode: enabled", "mode: enabled\n    strategy: halt-on-error"), "spec.agents.strategy", 7, "needs start_version"},
		{"bad start_version", edit("mode: enabled", "mode: enabled\n    start_version: 16.x"), "spec.agents.start_version", 7, "not a semantic version"},
		{"start_version newer", edit("mode: enabled", "mode: enabled\n    start_version: 17.0.0"), "spec.agents.start_version", 7, "newer than target_version"},
		{"bad strategy", edit("mode: enabled", "mode: enabled\n    start_version: 16.0.0\n    strategy: yolo"), "spec.agents.strategy", 8, "not one of halt-on-error, time-based"},
		{"halt percent zero", edit("mode: enabled", "mode: enabled\n    start_version: 16.0.0\n    halt_failure_percent: 0"), "spec.agents.halt_failure_percent", 8, "outside (0, 100]"},
		{"halt percent huge", edit("mode: enabled", "mode: enabled\n    start_version: 16.0.0\n    halt_failure_percent: 101"), "spec.agents.halt_failure_percent", 8, "outside"},
		{"halt min hosts zero", edit("mode: enabled", "mode: enabled\n    start_version: 16.0.0\n    halt_min_hosts: 0"), "spec.agents.halt_min_hosts", 8, "outside [1,"},
		{"halt without start_version", edit("mode: enabled", "mode: enabled\n    halt_min_hosts: 3"), "spec.agents.halt_min_hosts", 7, "needs start_version"},
		{"window duration in version", edit("mode: enabled", "mode: enabled\n    maintenance_window_duration: 1h"), "spec.agents.maintenance_window_duration", 7, "belongs in an autoupdate_config"},
		{"canary without start_version", edit("duration: 1h", "duration: 1h\n        canary_count: 5"), "spec.agents.groups[0].canary_count", 13, "needs spec.agents.start_version"},
		{"canary too many", edit("mode: enabled", "mode: enabled\n    start_version: 16.0.0", "duration: 1h", "duration: 1h\n        canary_count: 6"), "spec.agents.groups[0].canary_count", 14, "outside [0, 5]"},
		{"canary negative", edit("mode: enabled", "mode: enabled\n    start_version: 16.0.0", "duration: 1h", "duration: 1h\n        canary_count: -1"), "spec.agents.groups[0].canary_count", 14, "outside"},
		{"wait hours negative", edit("mode: enabled", "mode: enabled\n    start_version: 16.0.0", "duration: 1h", "duration: 1h\n        wait_hours: -1"), "spec.agents.groups[0].wait_hours", 14, "outside"},
		{"wait hours time-based", edit("mode: enabled", "mode: enabled\n    start_version: 16.0.0\n    strategy: time-based", "duration: 1h", "duration: 1h\n        wait_hours: 2"), "spec.agents.groups[0].wait_hours", 15, "halt-on-error only"},
		{"days and window", edit("duration: 1h", "duration: 1h\n        days: [Mon]\n        start_hour: 3"), "spec.agents.groups[0].window", 11, "keep one"},
		{"days without start_hour", edit(`        window: "0 2 * * *"
        duration: 1h`, "        days: [Mon]"), "spec.agents.groups[0].days", 11, "needs start_hour"},
		{"bad day", edit(`        window: "0 2 * * *"
        duration: 1h`, "        days: [Mon, Funday]\n        start_hour: 3"), "spec.agents.groups[0].days", 11, "not a day name"},
		{"bad start_hour", edit(`        window: "0 2 * * *"
        duration: 1h`, "        days: [Mon]\n        start_hour: 24"), "spec.agents.groups[0].days", 11, "outside [0, 23]"},
		{"start_hour without days", edit(`        window: "0 2 * * *"
        duration: 1h`, "        start_hour: 3"), "spec.agents.groups[0].days", 10, "day names"},
		{"unknown edition", edit("mode: enabled", "mode: enabled\n    edition: enterprise"), "spec.agents.edition", 7, "invalid edition"},
		{"fips on community", edit("mode: enabled", "mode: enabled\n    edition: community\n    fips: true"), "spec.agents.fips", 8, "needs edition ent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkPolicyError(t, tt.doc, tt.field, tt.line, tt.want)
		})
	}
}

// checkPolicyError checks that ParsePolicy refuses doc with an error that
// contains want and is a FieldError at field (and at line, unless 0, but at
// some line), or, when field is empty, is not a FieldError.
func checkPolicyError(t *testing.T, doc, field string, line int, want string) {
	t.Helper()
	p, err := ParsePolicy([]byte(doc))
	if !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("ParsePolicy = %+v, %v; want ErrInvalidPolicy", p, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	var fe *FieldError
	if field == "" {
		if errors.As(err, &fe) {
			t.Errorf("got FieldError %v; want a YAML-level error", fe)
		}
		return
	}
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FieldError", err)
	}
	if fe.Field != field || fe.Line == 0 || (line != 0 && fe.Line != line) {
		t.Errorf("FieldError at %s line %d; want %s line %d (%v)", fe.Field, fe.Line, field, line, err)
	}
}

// TestPolicyFlavour covers spec.agents.edition and fips: canonical names,
// FIPS implying Enterprise, and FlavourSet only when the resource says.
func TestPolicyFlavour(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, add string
		set       bool
		edition   string
		fips      bool
	}{
		{"unset", "", false, "", false},
		{"oss", "\n    edition: oss", true, "community", false},
		{"community", "\n    edition: community", true, "community", false},
		{"ent", "\n    edition: ent", true, "ent", false},
		{"ent fips", "\n    edition: ent\n    fips: true", true, "ent", true},
		{"fips alone is ent", "\n    fips: true", true, "ent", true},
		{"fips false", "\n    fips: false", true, "community", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePolicy([]byte(strings.Replace(validPolicy, "mode: enabled", "mode: enabled"+tt.add, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if p.FlavourSet != tt.set || p.Edition != tt.edition || p.FIPS != tt.fips {
				t.Errorf("flavour = set %t %q fips %t; want set %t %q fips %t", p.FlavourSet, p.Edition, p.FIPS, tt.set, tt.edition, tt.fips)
			}
		})
	}
}

// TestPolicyDefaultJitter: a resource without jitter_seconds serves
// Teleport's default of 60 s, never longer than the shortest window; an
// explicit 0 stays 0.
func TestPolicyDefaultJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, from, to string
		want           time.Duration
	}{
		{"omitted", "    jitter_seconds: 60\n", "", DefaultJitter},
		{"explicit zero", "jitter_seconds: 60", "jitter_seconds: 0", 0},
		{"explicit", "jitter_seconds: 60", "jitter_seconds: 120", 2 * time.Minute},
		{"omitted with a short window", "    jitter_seconds: 60\n    groups:\n      - name: staging\n        window: \"0 2 * * *\"\n        duration: 1h",
			"    groups:\n      - name: staging\n        window: \"0 2 * * *\"\n        duration: 30s", 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := strings.Replace(validPolicy, tt.from, tt.to, 1)
			if doc == validPolicy {
				t.Fatal("the edit changed nothing")
			}
			p, err := ParsePolicy([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if p.Jitter != tt.want {
				t.Errorf("Jitter = %s; want %s", p.Jitter, tt.want)
			}
			s, _ := p.Settings(p.Group(""), time.Now())
			if s.AgentUpdateJitterSeconds != int(tt.want/time.Second) {
				t.Errorf("agent_update_jitter_seconds = %d; want %d", s.AgentUpdateJitterSeconds, int(tt.want/time.Second))
			}
		})
	}
}

func TestParsePolicyImmediateWithoutGroups(t *testing.T) {
	t.Parallel()
	doc := "kind: autoupdate_version\nversion: v1\nspec:\n  agents:\n    target_version: 17.0.1\n    mode: enabled\n    schedule: immediate\n    jitter_seconds: 3600\n"
	p, err := ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.Group("any") != nil {
		t.Errorf("Group(any) = %v; want nil without groups", p.Group("any"))
	}
	s, until := p.Settings(nil, time.Now())
	if !s.AgentAutoUpdate || s.AgentUpdateWindow != nil || !until.IsZero() || s.AgentUpdateJitterSeconds != 3600 {
		t.Errorf("Settings = %+v, %v; want auto update, no window, valid forever", s, until)
	}
}

func TestPolicySettings(t *testing.T) {
	t.Parallel()
	withMode := func(mode, sched string) *Policy {
		doc := strings.Replace(validPolicy, "mode: enabled", "mode: "+mode, 1)
		doc = strings.Replace(doc, "schedule: regular", "schedule: "+sched, 1)
		p, err := ParsePolicy([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	inStaging := time.Date(2026, 11, 22, 2, 30, 0, 0, time.UTC) // Sunday, staging open
	outStaging := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC) // staging just closed
	inProd := time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC)     // Tuesday 04:00
	tests := []struct {
		name       string
		p          *Policy
		group      string
		now        time.Time
		auto       bool
		start, end string
		until      time.Time
	}{
		{"staging open", withMode("enabled", "regular"), "staging", inStaging, true, "2026-11-22T02:00:00Z", "2026-11-22T03:00:00Z", time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)},
		{"staging closed at end instant", withMode("enabled", "regular"), "staging", outStaging, false, "2026-11-23T02:00:00Z", "2026-11-23T03:00:00Z", time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)},
		{"unknown group gets production", withMode("enabled", "regular"), "dev", inStaging, false, "2026-11-24T04:00:00Z", "2026-11-24T06:00:00Z", time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC)},
		{"production open at start instant", withMode("enabled", "regular"), "production", inProd, true, "2026-11-24T04:00:00Z", "2026-11-24T06:00:00Z", time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)},
		{"disabled never updates", withMode("disabled", "regular"), "staging", inStaging, false, "2026-11-22T02:00:00Z", "2026-11-22T03:00:00Z", time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)},
		{"suspended holds", withMode("suspended", "regular"), "staging", inStaging, false, "2026-11-22T02:00:00Z", "2026-11-22T03:00:00Z", time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)},
		{"immediate always", withMode("enabled", "immediate"), "production", outStaging, true, "", "", time.Time{}},
		{"immediate but suspended", withMode("suspended", "immediate"), "production", outStaging, false, "", "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, until := tt.p.Settings(tt.p.Group(tt.group), tt.now)
			if s.AgentAutoUpdate != tt.auto || s.AgentVersion != "16.4.6" || s.AgentUpdateJitterSeconds != 60 {
				t.Errorf("Settings = %+v; want auto %v", s, tt.auto)
			}
			if s.AgentUpdateMode != string(tt.p.Mode) {
				t.Errorf("mode = %q; want %q", s.AgentUpdateMode, tt.p.Mode)
			}
			if !until.Equal(tt.until) {
				t.Errorf("until = %s; want %s", until, tt.until)
			}
			if tt.start == "" {
				if s.AgentUpdateWindow != nil {
					t.Errorf("window = %+v; want none", s.AgentUpdateWindow)
				}
				return
			}
			if s.AgentUpdateWindow == nil || s.AgentUpdateWindow.Start.Format(time.RFC3339) != tt.start || s.AgentUpdateWindow.End.Format(time.RFC3339) != tt.end {
				t.Errorf("window = %+v; want [%s, %s)", s.AgentUpdateWindow, tt.start, tt.end)
			}
		})
	}
}

func TestLoadPolicyTooLarge(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "p.yaml")
	big := validPolicy + "#" + strings.Repeat("x", MaxPolicySize) + "\n"
	if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadPolicy(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("LoadPolicy(big) = %v; want a size error", err)
	}
}
