package proxyapi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

func FuzzParsePolicy(f *testing.F) {
	for _, seed := range fuzzwatch.HardYAML() {
		f.Add(seed)
	}
	f.Add([]byte(validPolicy))
	example, err := os.ReadFile(filepath.Join("..", "..", "resources", "autoupdate_version.yaml"))
	if err != nil {
		f.Fatalf("read the example resource as a seed: %v", err)
	}
	f.Add(example)
	f.Add([]byte(strings.Replace(validPolicy, "regular", "immediate", 1)))
	f.Add([]byte(strings.Replace(validPolicy, "16.4.6", "v16", 1)))
	f.Add([]byte(strings.Replace(validPolicy, "mode: enabled", "mode: enabled\n    edition: ent\n    fips: true", 1)))
	f.Add([]byte(validPolicy + "---\n" + validPolicy))
	f.Add([]byte(teleportVersion + "---\n" + teleportConfig))
	f.Add([]byte(teleportConfig + "---\n" + teleportVersion))
	f.Add([]byte(strings.Replace(validPolicy, "mode: enabled", "mode: enabled\n    start_version: 16.0.0\n    strategy: time-based\n    halt_failure_percent: 5", 1)))
	f.Add([]byte("kind: autoupdate_version\nversion: v1\nspec:\n  agents: &a\n    x: *a\n"))
	f.Add([]byte(""))
	now := time.Date(2026, 11, 22, 2, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		p, err := ParsePolicy(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v does not wrap ErrInvalidPolicy", err)
			}
			return
		}
		if p.TargetVersion == nil || (p.Schedule == ScheduleRegular && len(p.Groups) == 0) {
			t.Fatalf("accepted an incomplete policy: %+v", p)
		}
		for _, g := range p.Groups {
			if checkName(g.Name) != nil || g.Duration <= 0 || g.Schedule == nil {
				t.Fatalf("accepted an invalid group: %+v", g)
			}
		}
		if p.Rollout() && (p.StartVersion.GreaterThan(p.TargetVersion) || p.Strategy == "" || p.HaltPercent <= 0 || p.HaltMinHosts < 1) {
			t.Fatalf("accepted an invalid rollout: %+v", p)
		}
		for _, g := range p.Groups {
			if g.CanaryCount < 0 || g.CanaryCount > MaxCanaryCount || g.Wait < 0 || (!p.Rollout() && (g.CanaryCount != 0 || g.Wait != 0)) {
				t.Fatalf("accepted an invalid group rollout: %+v", g)
			}
		}
		if p.FIPS && p.Edition != api.EditionEnterprise || p.FlavourSet && p.Edition == "" {
			t.Fatalf("accepted a build that is not one: edition %q fips %t", p.Edition, p.FIPS)
		}
		s, _ := p.Settings(p.Group(""), now)
		if s.AgentVersion == "" || s.AgentUpdateJitterSeconds < 0 || s.AgentUpdateJitterSeconds > MaxJitterSeconds {
			t.Fatalf("bad settings %+v", s)
		}
	})
}

func FuzzFindQuery(f *testing.F) {
	for _, s := range []string{"", "group=staging", "group=staging&host=h1", "group=%zz", "group=a+b", "group=&group=", "host=" + strings.Repeat("h", 70), "x=1&&group=prod%2D1", "group=dev&updater_id=0b9e0c1a-6f4d-4c8e-9a51-2f6b7c8d9e0f", "updater_id=a&updater_id=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		defer fuzzwatch.Start()()
		q, err := ParseFindQuery(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("error %v does not wrap ErrInvalidQuery", err)
			}
			return
		}
		for _, v := range []string{q.Group, q.Host, q.UpdaterID} {
			if v != "" && checkName(v) != nil {
				t.Fatalf("accepted %q", v)
			}
		}
	})
}

func FuzzParseTokens(f *testing.F) {
	for _, seed := range fuzzwatch.HardYAML() {
		f.Add(seed)
	}
	f.Add([]byte("tokens:\n  - token: " + strings.Repeat("k", 32) + "\n    group: staging\n    cidrs: [10.0.0.0/8]\n"))
	f.Add([]byte("tokens: []\n"))
	f.Add([]byte("tokens:\n  - token: short\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		toks, err := ParseTokens(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidTokens) {
				t.Fatalf("error %v does not wrap ErrInvalidTokens", err)
			}
			return
		}
		for _, tok := range toks {
			if len(tok.Token) < MinTokenLen {
				t.Fatalf("accepted a short token")
			}
		}
	})
}
