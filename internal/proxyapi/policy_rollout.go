package proxyapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
	"github.com/gravitational/teleport-update/internal/version"
)

// Limits and defaults of staged rollouts.
const (
	// MaxCanaryCount caps a group's canary_count (Teleport's cap).
	MaxCanaryCount = 5
	// MaxWaitHours caps a group's wait_hours (four weeks).
	MaxWaitHours = 24 * 28
	// DefaultHaltPercent and DefaultHaltMinHosts are the halt thresholds
	// when the resource does not set them: an active group halts once 10%
	// of the hosts that tried the target failed, from 10 hosts on.
	DefaultHaltPercent  = 10
	DefaultHaltMinHosts = 10
	// teleportWindow is how long a window set by days and start_hour lasts
	// without a maintenance_window_duration: one hour, as in Teleport.
	teleportWindow = time.Hour
)

// parseVersion parses a version as the resource may write it: strict
// semver, with or without the leading "v" Teleport's resources carry.
func parseVersion(s string) (*semver.Version, error) {
	return version.Parse(strings.TrimPrefix(s, "v"))
}

// parseRollout reads start_version, strategy, the halt thresholds and
// maintenance_window_duration into p. Without start_version there is no
// staged rollout, and the fields that only make sense in one are errors.
func parseRollout(p *Policy, a *rawAgents, fail func(string, error, string) error) error {
	if a.MaintenanceWindowDuration != "" {
		d, err := time.ParseDuration(a.MaintenanceWindowDuration)
		switch {
		case err != nil:
			return fail(fmt.Sprintf("%q is not a Go duration such as 1h or 90m", a.MaintenanceWindowDuration), err, "maintenance_window_duration")
		case d <= 0:
			return fail(fmt.Sprintf("%s is not positive", a.MaintenanceWindowDuration), nil, "maintenance_window_duration")
		case rollout.Strategy(a.Strategy) != rollout.TimeBased:
			return fail("applies to strategy time-based only (halt-on-error windows last one hour, as in Teleport)", nil, "maintenance_window_duration")
		}
	}
	if a.StartVersion == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"strategy", a.Strategy != ""}, {"halt_failure_percent", a.HaltFailurePercent != nil}, {"halt_min_hosts", a.HaltMinHosts != nil}} {
			if f.set {
				return fail("needs start_version: staged rollouts serve it to the groups whose turn has not come", nil, f.name)
			}
		}
		return nil
	}
	v, err := parseVersion(a.StartVersion)
	if err != nil {
		return fail(fmt.Sprintf("%q is not a semantic version such as 16.4.6 or v16.4.6", a.StartVersion), err, "start_version")
	}
	if v.GreaterThan(p.TargetVersion) {
		return fail(fmt.Sprintf("%s is newer than target_version %s: a rollout moves groups from the start version up to the target", v, p.TargetVersion), nil, "start_version")
	}
	p.StartVersion = v
	switch s := rollout.Strategy(a.Strategy); s {
	case rollout.HaltOnError, rollout.TimeBased:
		p.Strategy = s
	case "":
		p.Strategy = rollout.HaltOnError
	default:
		return fail(fmt.Sprintf("%q is not one of halt-on-error, time-based", a.Strategy), nil, "strategy")
	}
	p.HaltPercent, p.HaltMinHosts = DefaultHaltPercent, DefaultHaltMinHosts
	if a.HaltFailurePercent != nil {
		if f := *a.HaltFailurePercent; !(f > 0 && f <= 100) {
			return fail(fmt.Sprintf("%v is outside (0, 100]", f), nil, "halt_failure_percent")
		}
		p.HaltPercent = *a.HaltFailurePercent
	}
	if a.HaltMinHosts != nil {
		if n := *a.HaltMinHosts; n < 1 || n > 1_000_000 {
			return fail(fmt.Sprintf("%d is outside [1, 1000000]", n), nil, "halt_min_hosts")
		}
		p.HaltMinHosts = *a.HaltMinHosts
	}
	return nil
}

// groupRollout reads a group's canary_count and wait_hours into g.
func groupRollout(p *Policy, g *Group, raw rawGroup, fail func(string, error, string) error) error {
	if (raw.CanaryCount != nil || raw.WaitHours != nil) && p.StartVersion == nil {
		field := "canary_count"
		if raw.CanaryCount == nil {
			field = "wait_hours"
		}
		return fail("needs spec.agents.start_version: staged rollouts serve it to the groups whose turn has not come", nil, field)
	}
	if raw.CanaryCount != nil {
		if n := *raw.CanaryCount; n < 0 || n > MaxCanaryCount {
			return fail(fmt.Sprintf("%d is outside [0, %d]", n, MaxCanaryCount), nil, "canary_count")
		}
		g.CanaryCount = *raw.CanaryCount
	}
	if raw.WaitHours != nil {
		h := *raw.WaitHours
		switch {
		case h < 0 || h > MaxWaitHours:
			return fail(fmt.Sprintf("%d is outside [0, %d]", h, MaxWaitHours), nil, "wait_hours")
		case p.Strategy != rollout.HaltOnError:
			return fail("applies to strategy halt-on-error only: time-based groups each start in their own window", nil, "wait_hours")
		}
		g.Wait = time.Duration(h) * time.Hour
	}
	return nil
}

// weekdays maps Teleport's day names, short and long, to cron's.
var weekdays = map[string]string{
	"sun": "Sun", "sunday": "Sun", "mon": "Mon", "monday": "Mon", "tue": "Tue", "tuesday": "Tue",
	"wed": "Wed", "wednesday": "Wed", "thu": "Thu", "thursday": "Thu", "fri": "Fri", "friday": "Fri",
	"sat": "Sat", "saturday": "Sat",
}

// daysWindow turns Teleport's days and start_hour into a cron expression
// of window starts: "0 H * * Mon,Tue", or every day for "*".
func daysWindow(days []string, startHour *int) (string, error) {
	if startHour == nil {
		return "", errors.New("days needs start_hour (0-23, UTC)")
	}
	if h := *startHour; h < 0 || h > 23 {
		return "", fmt.Errorf("start_hour %d is outside [0, 23]", h)
	}
	if len(days) == 0 {
		return "", errors.New("is required with start_hour: day names such as Mon, Tuesday, or \"*\" for every day")
	}
	var names []string
	for _, d := range days {
		if d == "*" {
			return "0 " + strconv.Itoa(*startHour) + " * * *", nil
		}
		n, ok := weekdays[strings.ToLower(d)]
		if !ok {
			return "", fmt.Errorf("%q is not a day name such as Mon or Monday, or \"*\"", d)
		}
		names = append(names, n)
	}
	return "0 " + strconv.Itoa(*startHour) + " * * " + strings.Join(names, ","), nil
}

// Rollout says whether the policy runs a staged rollout.
func (p *Policy) Rollout() bool { return p.StartVersion != nil }

// Plan returns the rollout plan of the policy's groups.
func (p *Policy) Plan() rollout.Plan {
	plan := rollout.Plan{Strategy: p.Strategy, HaltPercent: p.HaltPercent, HaltMinHosts: p.HaltMinHosts}
	for _, g := range p.Groups {
		plan.Groups = append(plan.Groups, rollout.GroupPlan{Name: g.Name, CanaryCount: g.CanaryCount, Wait: g.Wait})
	}
	return plan
}
