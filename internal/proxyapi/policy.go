package proxyapi

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"go.yaml.in/yaml/v3"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
	"github.com/gravitational/teleport-update/internal/proxyapi/schedule"
)

// ErrInvalidPolicy is wrapped by every error ParsePolicy and LoadPolicy
// return for a file that is not a valid autoupdate_version resource.
var ErrInvalidPolicy = errors.New("invalid autoupdate_version resource")

// Policy resource identity and limits.
const (
	PolicyKind    = "autoupdate_version"
	PolicyVersion = "v1"

	// MaxPolicySize caps the policy file; reading stops at the cap.
	MaxPolicySize = 1 << 20
	// MaxGroups caps the number of groups in a policy.
	MaxGroups = 256
	// MaxJitterSeconds caps spec.agents.jitter_seconds (one hour).
	MaxJitterSeconds = 3600
	// DefaultJitter is the agents' random delay when the resource does not
	// set jitter_seconds, as in Teleport (never longer than the shortest
	// group window).
	DefaultJitter = 60 * time.Second
	// MaxNameLen caps group names and the find query parameters.
	MaxNameLen = 64
)

// Mode says whether agents update at all.
type Mode string

// Modes of spec.agents.mode.
const (
	// ModeEnabled: agents update to the target version inside their window.
	ModeEnabled Mode = "enabled"
	// ModeDisabled: agents never update (a first install still uses the
	// target version).
	ModeDisabled Mode = "disabled"
	// ModeSuspended: agents hold where they are, e.g. while a bad release
	// is investigated.
	ModeSuspended Mode = "suspended"
)

// ScheduleKind says when agents update.
type ScheduleKind string

// Schedules of spec.agents.schedule.
const (
	// ScheduleRegular: each group updates inside its own window.
	ScheduleRegular ScheduleKind = "regular"
	// ScheduleImmediate: every group may update at any time.
	ScheduleImmediate ScheduleKind = "immediate"
)

// Policy is a parsed, validated autoupdate_version resource. It is
// immutable and safe for concurrent use.
type Policy struct {
	// TargetVersion is the version every group should run.
	TargetVersion *semver.Version
	Mode          Mode
	Schedule      ScheduleKind
	// Jitter is the upper bound of the agents' random delay
	// (DefaultJitter when the resource does not set it).
	Jitter time.Duration
	// Edition and FIPS are the Teleport build the agents run, when the
	// resource sets them (FlavourSet); otherwise the server's own settings
	// apply. Edition is canonical (api.ParseEdition); FIPS implies
	// Enterprise.
	Edition    string
	FIPS       bool
	FlavourSet bool
	// Groups in file order; the last one is the default.
	Groups []Group

	// StartVersion, when set, turns on staged rollouts: groups whose turn
	// has not come, halted groups and the groups after them are served it
	// instead of TargetVersion (see policy_rollout.go).
	StartVersion *semver.Version
	// Strategy orders the groups' rollouts (set with StartVersion).
	Strategy rollout.Strategy
	// HaltPercent and HaltMinHosts: an active group halts once HaltPercent
	// of the hosts that tried the target failed, counted from
	// HaltMinHosts hosts on.
	HaltPercent  float64
	HaltMinHosts int
	// Revision is metadata.revision of a resource exported from Teleport.
	Revision string
}

// Group is a named set of agents sharing a maintenance window.
type Group struct {
	Name string
	// Window is the cron expression (UTC) of window starts, as written.
	Window string
	// Duration is the length of each window.
	Duration time.Duration
	// Schedule evaluates Window and Duration.
	Schedule *schedule.Schedule
	// CanaryCount hosts try the target first (staged rollouts); Wait is
	// how long the next group waits after this one is done (halt-on-error).
	CanaryCount int
	Wait        time.Duration
}

// FieldError is a policy problem tied to a field of the resource.
// It wraps ErrInvalidPolicy and, when there is one, the underlying error.
type FieldError struct {
	// Field is the YAML path, e.g. "spec.agents.groups[1].window".
	Field string
	// Line is the 1-based line of the field's value, 0 when unknown.
	Line int
	// Msg says what is wrong.
	Msg string
	// Err is the underlying error, if any.
	Err error
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%v: %s (line %d): %s", ErrInvalidPolicy, e.Field, e.Line, e.Msg)
	}
	return fmt.Sprintf("%v: %s: %s", ErrInvalidPolicy, e.Field, e.Msg)
}

// Is makes errors.Is(err, ErrInvalidPolicy) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidPolicy }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// The raw YAML shape: the union of this project's autoupdate_version and
// the two resources Teleport's `tctl get autoupdate_version` and `tctl get
// autoupdate_config` write (see policy_teleport.go for which fields belong
// to which document).
type rawPolicy struct {
	Kind     string       `yaml:"kind"`
	Version  string       `yaml:"version"`
	Metadata *rawMetadata `yaml:"metadata"`
	Spec     *rawSpec     `yaml:"spec"`
}

// rawMetadata accepts the metadata block of a Teleport resource, so a
// resource exported from Teleport parses; revision is reported in status.
type rawMetadata struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	Revision    string            `yaml:"revision"`
	Labels      map[string]string `yaml:"labels"`
}

type rawSpec struct {
	Agents *rawAgents `yaml:"agents"`
	// Tools is Teleport's client tools section: accepted, not used.
	Tools *struct {
		TargetVersion string `yaml:"target_version"`
		Mode          string `yaml:"mode"`
	} `yaml:"tools"`
}

type rawAgents struct {
	TargetVersion string     `yaml:"target_version"`
	Mode          string     `yaml:"mode"`
	Schedule      string     `yaml:"schedule"`
	JitterSeconds *int       `yaml:"jitter_seconds"`
	Edition       *string    `yaml:"edition"`
	FIPS          *bool      `yaml:"fips"`
	Groups        []rawGroup `yaml:"groups"`

	// Staged rollouts (policy_rollout.go).
	StartVersion       string   `yaml:"start_version"`
	Strategy           string   `yaml:"strategy"`
	HaltFailurePercent *float64 `yaml:"halt_failure_percent"`
	HaltMinHosts       *int     `yaml:"halt_min_hosts"`

	// Teleport's autoupdate_config (policy_teleport.go).
	MaintenanceWindowDuration string        `yaml:"maintenance_window_duration"`
	Schedules                 *rawSchedules `yaml:"schedules"`
}

// rawSchedules is Teleport's spec.agents.schedules.
type rawSchedules struct {
	Regular []rawGroup `yaml:"regular"`
}

type rawGroup struct {
	Name     string `yaml:"name"`
	Window   string `yaml:"window"`
	Duration string `yaml:"duration"`

	// Staged rollouts, with Teleport's names: canary_count, wait_hours,
	// and days + start_hour instead of window + duration.
	CanaryCount *int     `yaml:"canary_count"`
	WaitHours   *int     `yaml:"wait_hours"`
	Days        []string `yaml:"days"`
	StartHour   *int     `yaml:"start_hour"`
}

// LoadPolicy reads and parses the policy file at path, which must be a
// regular file of at most MaxPolicySize bytes (a named pipe or device is
// refused without waiting on it). It returns the policy and the bytes it
// was parsed from (also when parsing fails, so callers can tell changes
// apart). Errors name the path; see ParsePolicy.
func LoadPolicy(path string) (*Policy, []byte, error) {
	data, err := capread.RegularFile(path, MaxPolicySize)
	if err != nil {
		return nil, nil, fmt.Errorf("read policy: %w", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return nil, data, fmt.Errorf("parse policy %s: %w", path, err)
	}
	return p, data, nil
}

// ParsePolicy parses a policy strictly: one autoupdate_version resource
// (this project's, or Teleport's as `tctl get autoupdate_version` writes
// it), optionally followed, after ---, by Teleport's autoupdate_config.
// Outcomes:
//   - a Policy when the document is valid;
//   - an error wrapping ErrInvalidPolicy otherwise, a *FieldError naming the
//     field and line when the problem is in a value: unknown fields,
//     duplicate keys, wrong kind or version, a target_version that is not
//     strict semver, an unknown mode or schedule, jitter outside
//     [0, MaxJitterSeconds] or longer than a group's window, no groups with
//     schedule regular, duplicate or invalid group names, invalid cron
//     expressions, durations that are not positive Go durations, invalid
//     staged-rollout fields (policy_rollout.go), and documents that are
//     not one autoupdate_version plus at most one autoupdate_config.
func ParsePolicy(data []byte) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidPolicy, MaxPolicySize)
	}
	docs, err := decodeDocs(data)
	if err != nil {
		return nil, err
	}
	m, err := mergeDocs(docs)
	if err != nil {
		return nil, err
	}
	a := m.agents
	p := &Policy{Revision: m.revision}
	if a.TargetVersion == "" {
		return nil, m.fail("is required", nil, "target_version")
	}
	v, err := parseVersion(a.TargetVersion)
	if err != nil {
		return nil, m.fail(fmt.Sprintf("%q is not a semantic version such as 16.4.6 or v16.4.6", a.TargetVersion), err, "target_version")
	}
	p.TargetVersion = v

	switch md := Mode(a.Mode); md {
	case ModeEnabled, ModeDisabled, ModeSuspended:
		p.Mode = md
	case "":
		return nil, m.fail("is required: enabled, disabled or suspended", nil, "mode")
	default:
		return nil, m.fail(fmt.Sprintf("%q is not one of enabled, disabled, suspended", a.Mode), nil, "mode")
	}
	switch s := ScheduleKind(a.Schedule); s {
	case ScheduleRegular, ScheduleImmediate:
		p.Schedule = s
	case "":
		return nil, m.fail("is required: regular or immediate", nil, "schedule")
	default:
		return nil, m.fail(fmt.Sprintf("%q is not one of regular, immediate", a.Schedule), nil, "schedule")
	}
	if a.JitterSeconds != nil {
		j := *a.JitterSeconds
		if j < 0 || j > MaxJitterSeconds {
			return nil, m.fail(fmt.Sprintf("%d is outside [0, %d]", j, MaxJitterSeconds), nil, "jitter_seconds")
		}
		p.Jitter = time.Duration(j) * time.Second
	} else {
		p.Jitter = DefaultJitter
	}
	if err := parseFlavour(p, a, m.versionDoc().fail); err != nil {
		return nil, err
	}
	if err := parseRollout(p, a, m.fail); err != nil {
		return nil, err
	}
	if err := parseGroups(p, m); err != nil {
		return nil, err
	}
	return p, nil
}

// parseGroups reads the groups (spec.agents.groups, or the schedules of an
// autoupdate_config document) into p.
func parseGroups(p *Policy, m *merged) error {
	groups, gdoc, gpath := m.groups()
	if len(groups) == 0 && p.Schedule == ScheduleRegular {
		return m.versionDoc().fail("schedule regular needs at least one group (spec.agents.groups, or the schedules.regular of an autoupdate_config document)", nil, "spec", "agents", "groups")
	}
	if len(groups) == 0 && p.Rollout() {
		return m.fail("a staged rollout needs groups (spec.agents.groups, or the schedules.regular of an autoupdate_config document)", nil, "start_version")
	}
	if len(groups) > MaxGroups {
		return gdoc.fail(fmt.Sprintf("%d groups, at most %d are allowed", len(groups), MaxGroups), nil, gpath...)
	}
	seen := make(map[string]int, len(groups))
	for i, g := range groups {
		at := func(field string) []any { return append(slices.Clone(gpath), i, field) }
		fail := func(msg string, err error, field string) error { return gdoc.fail(msg, err, at(field)...) }
		if err := checkName(g.Name); err != nil {
			return fail(err.Error(), nil, "name")
		}
		if first, dup := seen[g.Name]; dup {
			return fail(fmt.Sprintf("group %q is already defined by groups[%d]", g.Name, first), nil, "name")
		}
		seen[g.Name] = i
		window, d, err := groupWindow(g, m.agents, fail)
		if err != nil {
			return err
		}
		sched, err := schedule.ParseSchedule(window, d)
		if err != nil {
			field := "window"
			if d > schedule.MaxDuration {
				field = "duration"
			}
			return fail(err.Error(), err, field)
		}
		if m.agents.JitterSeconds == nil {
			// The default never makes agents update after their window.
			p.Jitter = min(p.Jitter, d)
		}
		if p.Schedule == ScheduleRegular && p.Jitter > d {
			return fail(fmt.Sprintf("jitter_seconds %d is longer than this group's window (%s): agents would update after the window closes", int(p.Jitter/time.Second), d), nil, "duration")
		}
		grp := Group{Name: g.Name, Window: window, Duration: d, Schedule: sched}
		if err := groupRollout(p, &grp, g, fail); err != nil {
			return err
		}
		p.Groups = append(p.Groups, grp)
	}
	return nil
}

// groupWindow returns a group's window as a cron expression and duration:
// window and duration as written, or Teleport's days and start_hour, whose
// window lasts the maintenance_window_duration (time-based) or one hour.
func groupWindow(g rawGroup, a *rawAgents, fail func(string, error, string) error) (string, time.Duration, error) {
	if g.Days != nil || g.StartHour != nil {
		if g.Window != "" {
			return "", 0, fail("window and days/start_hour are two ways to say the same thing: keep one", nil, "window")
		}
		window, err := daysWindow(g.Days, g.StartHour)
		if err != nil {
			return "", 0, fail(err.Error(), nil, "days")
		}
		d := teleportWindow
		if a.MaintenanceWindowDuration != "" {
			d, _ = time.ParseDuration(a.MaintenanceWindowDuration) // checked by parseRollout
		}
		if g.Duration == "" {
			return window, d, nil
		}
		g.Window = window
	}
	if g.Window == "" {
		return "", 0, fail("is required: a cron expression (UTC) for window starts, e.g. \"0 2 * * *\" (or Teleport's days and start_hour)", nil, "window")
	}
	if g.Duration == "" {
		return "", 0, fail("is required: a Go duration such as 1h or 90m", nil, "duration")
	}
	d, err := time.ParseDuration(g.Duration)
	if err != nil {
		return "", 0, fail(fmt.Sprintf("%q is not a Go duration such as 1h or 90m", g.Duration), err, "duration")
	}
	if d <= 0 {
		return "", 0, fail(fmt.Sprintf("%s is not positive", g.Duration), nil, "duration")
	}
	return g.Window, d, nil
}

// parseFlavour reads spec.agents.edition and spec.agents.fips into p.
func parseFlavour(p *Policy, a *rawAgents, fail func(string, error, ...any) error) error {
	if a.Edition == nil && a.FIPS == nil {
		return nil
	}
	p.FlavourSet = true
	if a.Edition != nil {
		e, err := api.ParseEdition(*a.Edition)
		if err != nil {
			return fail(err.Error(), err, "spec", "agents", "edition")
		}
		p.Edition = e
	}
	if a.FIPS != nil && *a.FIPS {
		if a.Edition != nil && p.Edition != api.EditionEnterprise {
			return fail("fips: true needs edition ent (Teleport publishes FIPS builds of Enterprise only)", nil, "spec", "agents", "fips")
		}
		p.FIPS, p.Edition = true, api.EditionEnterprise
	}
	if p.Edition == "" {
		p.Edition = api.EditionCommunity
	}
	return nil
}

// checkName validates a group name or query value.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("is longer than %d characters", MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i]) {
			return fmt.Errorf("%q has characters outside A-Z a-z 0-9 . _ -", s)
		}
	}
	return nil
}

// nameChar reports whether c may appear in a group name or query value.
func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Group returns the group named name, or the last group when name is empty
// or unknown, or nil when the policy has no groups (schedule immediate).
func (p *Policy) Group(name string) *Group {
	for i := range p.Groups {
		if p.Groups[i].Name == name {
			return &p.Groups[i]
		}
	}
	if len(p.Groups) == 0 {
		return nil
	}
	return &p.Groups[len(p.Groups)-1]
}

// HasGroup reports whether the policy defines a group named name.
func (p *Policy) HasGroup(name string) bool {
	for i := range p.Groups {
		if p.Groups[i].Name == name {
			return true
		}
	}
	return false
}

// Settings returns the find answer for group g (nil: no groups) at now, and
// the instant until which that answer stays the same (zero: for as long as
// the policy does). The window is the one open at now or else the next one.
func (p *Policy) Settings(g *Group, now time.Time) (api.AutoUpdateSettings, time.Time) {
	s := api.AutoUpdateSettings{
		AgentVersion:             p.TargetVersion.String(),
		AgentUpdateJitterSeconds: int(p.Jitter / time.Second),
		AgentUpdateMode:          string(p.Mode),
	}
	if g != nil {
		s.AgentUpdateGroup = g.Name
	}
	if p.Schedule == ScheduleImmediate || g == nil {
		s.AgentAutoUpdate = p.Mode == ModeEnabled
		return s, time.Time{}
	}
	w, open := g.Schedule.CurrentOrNext(now)
	s.AgentAutoUpdate = open && p.Mode == ModeEnabled
	var until time.Time
	switch {
	case open:
		until = w.End
	case !w.IsZero():
		until = w.Start
	default:
		// No window within cron's five-year horizon: look again later.
		until = now.Add(time.Hour)
	}
	if !w.IsZero() {
		s.AgentUpdateWindow = &api.UpdateWindow{Start: w.Start.UTC(), End: w.End.UTC()}
	}
	return s, until
}

// yamlMessage turns yaml.v3's errors into sentences about the resource:
// Go type names become YAML paths.
func yamlMessage(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:; ", "")
	for goType, path := range map[string]string{
		"proxyapi.rawPolicy":    "the top level",
		"proxyapi.rawMetadata":  "metadata",
		"proxyapi.rawSpec":      "spec",
		"proxyapi.rawAgents":    "spec.agents",
		"proxyapi.rawGroup":     "spec.agents.groups[]",
		"proxyapi.rawSchedules": "spec.agents.schedules",
	} {
		msg = strings.ReplaceAll(msg, "in type "+goType, "in "+path)
	}
	return msg
}

// fieldName renders a path such as spec.agents.groups[1].window.
func fieldName(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(p) + "]")
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

// nodeLines finds line numbers in a parsed YAML tree.
type nodeLines struct{ root *yaml.Node }

// line returns the line of the field at path: the line of its key (or of
// the sequence item), the line of the deepest existing ancestor's key when
// the field is missing, or 0.
func (n nodeLines) line(path ...any) int {
	cur := n.root
	if cur == nil {
		return 0
	}
	if cur.Kind == yaml.DocumentNode && len(cur.Content) > 0 {
		cur = cur.Content[0]
	}
	line := cur.Line
	for _, p := range path {
		key, next := step(cur, p)
		if next == nil {
			return line
		}
		line = key.Line
		cur = next
	}
	return line
}

// step returns the key (or item) node and the value node at p in n.
func step(n *yaml.Node, p any) (key, value *yaml.Node) {
	switch p := p.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil, nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				return n.Content[i], n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && p >= 0 && p < len(n.Content) {
			return n.Content[p], n.Content[p]
		}
	}
	return nil, nil
}
