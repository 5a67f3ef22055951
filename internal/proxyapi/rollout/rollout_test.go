package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)

func plan(strategy Strategy) Plan {
	return Plan{
		Strategy:     strategy,
		Groups:       []GroupPlan{{Name: "dev", CanaryCount: 2, Wait: time.Hour}, {Name: "staging", CanaryCount: 0, Wait: 2 * time.Hour}, {Name: "prod", CanaryCount: 5}},
		HaltPercent:  10,
		HaltMinHosts: 20,
	}
}

func states(s ...State) []GroupState {
	names := []string{"dev", "staging", "prod"}
	var out []GroupState
	for i, st := range s {
		out = append(out, GroupState{Name: names[i], State: st, Since: t0})
	}
	return out
}

func canaries(results ...string) []CanaryResult {
	var out []CanaryResult
	for i, r := range results {
		out = append(out, CanaryResult{HostID: fmt.Sprintf("h%d", i), Reported: r != "", Success: r == "ok"})
	}
	return out
}

func TestEvaluate(t *testing.T) {
	always := func(string) bool { return true }
	never := func(string) bool { return false }
	tests := []struct {
		name   string
		plan   Plan
		states []GroupState
		counts map[string]Counts
		open   func(string) bool
		now    time.Time
		want   []string
	}{
		{name: "first group starts with canaries", plan: plan(HaltOnError), states: states(Unstarted, Unstarted, Unstarted), open: always, now: t0,
			want: []string{"dev: unstarted → canary"}},
		{name: "first group waits for its window", plan: plan(HaltOnError), states: states(Unstarted, Unstarted, Unstarted), open: never, now: t0},
		{name: "canaries still updating", plan: plan(HaltOnError), states: states(Canary, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Canaries: canaries("ok", "")}}, now: t0},
		{name: "all canaries succeeded", plan: plan(HaltOnError), states: states(Canary, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Canaries: canaries("ok", "ok")}}, now: t0, want: []string{"dev: canary → active"}},
		{name: "one canary failed", plan: plan(HaltOnError), states: states(Canary, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Canaries: canaries("ok", "fail")}}, now: t0, want: []string{"dev: canary → halted"}},
		{name: "no canary chosen yet", plan: plan(HaltOnError), states: states(Canary, Unstarted, Unstarted), now: t0},
		{name: "active group done by the 90/90 rule", plan: plan(HaltOnError), states: states(Active, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Initial: 100, Present: 95, UpToDate: 86, Tried: 86}}, now: t0, want: []string{"dev: active → done"}},
		{name: "active group not done: too few up to date", plan: plan(HaltOnError), states: states(Active, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Initial: 100, Present: 95, UpToDate: 85, Tried: 85}}, now: t0},
		{name: "active group not done: hosts went away", plan: plan(HaltOnError), states: states(Active, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Initial: 100, Present: 89, UpToDate: 89, Tried: 89}}, now: t0},
		{name: "failures over the threshold halt", plan: plan(HaltOnError), states: states(Active, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Initial: 100, Present: 100, UpToDate: 27, Tried: 30, Failed: 3}}, now: t0, want: []string{"dev: active → halted"}},
		{name: "failures under the threshold", plan: plan(HaltOnError), states: states(Active, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Initial: 100, Present: 100, UpToDate: 28, Tried: 30, Failed: 2}}, now: t0},
		{name: "too few tried for the threshold", plan: plan(HaltOnError), states: states(Active, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Initial: 100, Present: 100, UpToDate: 9, Tried: 19, Failed: 10}}, now: t0},
		{name: "next group waits for the wait", plan: plan(HaltOnError), states: states(Done, Unstarted, Unstarted), now: t0.Add(59 * time.Minute)},
		{name: "next group starts after the wait, without canaries", plan: plan(HaltOnError), states: states(Done, Unstarted, Unstarted),
			now: t0.Add(time.Hour), want: []string{"staging: unstarted → active"}},
		{name: "halt-on-error: a halted group stops the next", plan: plan(HaltOnError), states: states(Halted, Unstarted, Unstarted), now: t0.Add(24 * time.Hour)},
		{name: "halted stays halted", plan: plan(HaltOnError), states: states(Halted, Unstarted, Unstarted),
			counts: map[string]Counts{"dev": {Initial: 10, Present: 10, UpToDate: 10, Tried: 10}}, now: t0},
		{name: "time-based: every group in its own window", plan: plan(TimeBased), states: states(Unstarted, Unstarted, Unstarted),
			open: func(g string) bool { return g != "staging" }, now: t0, want: []string{"dev: unstarted → canary", "prod: unstarted → canary"}},
		{name: "time-based: a halted group holds the later ones back", plan: plan(TimeBased), states: states(Halted, Unstarted, Unstarted),
			open: always, now: t0},
		{name: "time-based: a rolled-back group holds the later ones back", plan: plan(TimeBased), states: states(Done, RolledBack, Unstarted),
			open: always, now: t0},
		{name: "halt-on-error: the next group also waits for its window", plan: plan(HaltOnError), states: states(Done, Unstarted, Unstarted),
			open: never, now: t0.Add(24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tr := range Evaluate(tt.plan, tt.states, tt.counts, tt.open, tt.now) {
				got = append(got, fmt.Sprintf("%s: %s → %s", tr.Group, tr.From, tr.To))
				if tr.Reason == "" {
					t.Errorf("%v has no reason", tr)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Evaluate = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServes(t *testing.T) {
	tests := []struct {
		s              State
		canary, halted bool
		want           bool
	}{
		{Unstarted, true, false, false},
		{Canary, true, false, true},
		{Canary, false, false, false},
		{Active, false, false, true},
		{Done, false, false, true},
		{Active, false, true, false},
		{Halted, true, false, false},
		{RolledBack, false, false, false},
	}
	for _, tt := range tests {
		if got := Serves(tt.s, tt.canary, tt.halted); got != tt.want {
			t.Errorf("Serves(%s, canary %v, held back %v) = %v, want %v", tt.s, tt.canary, tt.halted, got, tt.want)
		}
	}
	p := plan(TimeBased)
	if !HeldBack(p, states(Halted, Active, Active), 2) || HeldBack(p, states(Done, Active, Active), 2) || HeldBack(p, states(Active, Halted, Active), 0) {
		t.Error("HeldBack: a halted group must hold back the later groups only")
	}
}

func TestPickCanaries(t *testing.T) {
	var hosts []string
	for i := range 1000 {
		hosts = append(hosts, fmt.Sprintf("%064x", i))
	}
	a := PickCanaries("prod", hosts, 5)
	reversed := slices.Clone(hosts)
	slices.Reverse(reversed)
	if b := PickCanaries("prod", reversed, 5); !slices.Equal(a, b) || len(a) != 5 {
		t.Fatalf("canaries depend on the order hosts are listed: %v vs %v", a, b)
	}
	// Spread: not the first hosts, and another group picks others.
	if slices.Equal(a, hosts[:5]) || slices.Equal(a, PickCanaries("dev", hosts, 5)) {
		t.Errorf("canaries %v are not spread by hash", a)
	}
	// Stable: a host that stops reporting is replaced, the others stay.
	without := slices.DeleteFunc(slices.Clone(hosts), func(h string) bool { return h == a[0] })
	if b := PickCanaries("prod", without, 5); !slices.Equal(b[:4], a[1:]) {
		t.Errorf("after %s left: %v, want %v plus one", a[0], b, a[1:])
	}
	if got := PickCanaries("prod", hosts[:3], 5); len(got) != 3 {
		t.Errorf("fewer candidates than canaries: %v", got)
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		from State
		a    Action
		to   State
		err  string
	}{
		{Active, ActionHalt, Halted, ""},
		{Canary, ActionHalt, Halted, ""},
		{Halted, ActionResume, Active, ""},
		{RolledBack, ActionResume, Active, ""},
		{Active, ActionMarkDone, Done, ""},
		{Active, ActionRollback, RolledBack, ""},
		{Done, ActionRollback, RolledBack, ""},
		{Active, ActionResume, "", "not halted"},
		{Done, ActionHalt, "", "is done"},
		{Halted, ActionHalt, "", "already"},
		{Active, Action("explode"), "", "unknown action"},
	}
	for _, tt := range tests {
		tr, err := Apply("prod", tt.from, tt.a, "")
		if tt.err != "" {
			if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Apply(%s, %s) = %v, want an ErrNotAllowed containing %q", tt.from, tt.a, err, tt.err)
			}
			continue
		}
		if err != nil || tr.From != tt.from || tr.To != tt.to || tr.Reason == "" {
			t.Errorf("Apply(%s, %s) = %+v, %v; want → %s", tt.from, tt.a, tr, err, tt.to)
		}
	}
}

// TestCanaryOutcome reads a canary's result at the target from its
// latest report.
func TestCanaryOutcome(t *testing.T) {
	tests := []struct {
		name string
		h    HostResult
		want CanaryResult
	}{
		{"runs the target", HostResult{HostID: "a", Version: "2.0.0", Target: "2.0.0", Result: "success"}, CanaryResult{HostID: "a", Reported: true, Success: true}},
		{"installed at the target", HostResult{HostID: "a", Version: "2.0.0", Result: "none"}, CanaryResult{HostID: "a", Reported: true, Success: true}},
		{"failed the target", HostResult{HostID: "a", Version: "1.0.0", Target: "2.0.0", Result: "failure"}, CanaryResult{HostID: "a", Reported: true}},
		{"not tried yet", HostResult{HostID: "a", Version: "1.0.0", Target: "1.0.0", Result: "success"}, CanaryResult{HostID: "a"}},
		{"failed another version", HostResult{HostID: "a", Version: "1.0.0", Target: "1.5.0", Result: "failure"}, CanaryResult{HostID: "a"}},
	}
	for _, tt := range tests {
		if got := CanaryOutcome(tt.h, "2.0.0"); got != tt.want {
			t.Errorf("%s: CanaryOutcome = %+v; want %+v", tt.name, got, tt.want)
		}
	}
}
