package proxyapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// ConfigKind is Teleport's autoupdate_config resource: the schedule and
// strategy half of a policy, next to an autoupdate_version document.
const ConfigKind = "autoupdate_config"

// maxDocs is how many YAML documents a policy file may hold: an
// autoupdate_version and, optionally, an autoupdate_config.
const maxDocs = 2

// policyDoc is one YAML document of the policy file.
type policyDoc struct {
	raw   rawPolicy
	lines nodeLines
	// multi: the file holds more than one document.
	multi bool
}

// fail returns a *FieldError at path in d. Fields of an autoupdate_config
// document are named with the kind first, so a message says which of the
// two documents is wrong.
func (d *policyDoc) fail(msg string, err error, path ...any) error {
	field := fieldName(path)
	if d.multi && d.raw.Kind == ConfigKind {
		field = ConfigKind + " " + field
	}
	return &FieldError{Field: field, Line: d.lines.line(path...), Msg: msg, Err: err}
}

// decodeDocs decodes the file's documents strictly (unknown fields and
// duplicate keys are errors), each with its node tree for line numbers.
func decodeDocs(data []byte) ([]*policyDoc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*policyDoc
	for {
		var d policyDoc
		err := dec.Decode(&d.raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalidPolicy, yamlMessage(err))
		}
		if len(docs) == maxDocs {
			return nil, fmt.Errorf("%w: the file holds more than %d YAML documents (an autoupdate_version and at most one autoupdate_config)", ErrInvalidPolicy, maxDocs)
		}
		// The node tree gives line numbers; the strict decode above
		// already proved this document parses.
		var root yaml.Node
		if err := nodes.Decode(&root); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalidPolicy, yamlMessage(err))
		}
		d.lines = nodeLines{root: &root}
		docs = append(docs, &d)
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%w: the file is empty", ErrInvalidPolicy)
	}
	return docs, nil
}

// merged is the policy's agents section put together from the
// autoupdate_version document and, when there is one, the
// autoupdate_config document, remembering which document set each field.
type merged struct {
	ver, cfg *policyDoc
	agents   *rawAgents
	// fromCfg lists the agents fields taken from the config document.
	fromCfg  map[string]bool
	revision string
}

// versionDoc returns the autoupdate_version document.
func (m *merged) versionDoc() *policyDoc { return m.ver }

// fail returns a *FieldError at spec.agents.field in the document that
// set field.
func (m *merged) fail(msg string, err error, field string) error {
	d := m.ver
	if m.fromCfg[field] {
		d = m.cfg
	}
	return d.fail(msg, err, "spec", "agents", field)
}

// groups returns the groups, the document they come from and their path.
func (m *merged) groups() ([]rawGroup, *policyDoc, []any) {
	if m.cfg != nil && m.cfg.raw.Spec != nil && m.cfg.raw.Spec.Agents != nil && m.cfg.raw.Spec.Agents.Schedules != nil {
		return m.cfg.raw.Spec.Agents.Schedules.Regular, m.cfg, []any{"spec", "agents", "schedules", "regular"}
	}
	return m.agents.Groups, m.ver, []any{"spec", "agents", "groups"}
}

// mergeDocs checks each document's kind and version and merges their
// agents sections. An autoupdate_config document may set mode, strategy,
// maintenance_window_duration, schedules and the halt thresholds; a field
// set in both documents is an error, except mode, where (as in Teleport)
// disabled wins over suspended, which wins over enabled.
func mergeDocs(docs []*policyDoc) (*merged, error) {
	m := &merged{fromCfg: map[string]bool{}}
	for _, d := range docs {
		d.multi = len(docs) > 1
		switch d.raw.Kind {
		case PolicyKind:
			if m.ver != nil {
				return nil, d.fail("the file holds two autoupdate_version documents", nil, "kind")
			}
			m.ver = d
		case ConfigKind:
			if len(docs) == 1 {
				return nil, d.fail(fmt.Sprintf("got %q, want %q (an autoupdate_config goes after an autoupdate_version document, separated by ---)", d.raw.Kind, PolicyKind), nil, "kind")
			}
			if m.cfg != nil {
				return nil, d.fail("the file holds two autoupdate_config documents", nil, "kind")
			}
			m.cfg = d
		default:
			want := fmt.Sprintf("%q", PolicyKind)
			if len(docs) > 1 {
				want += " or " + fmt.Sprintf("%q", ConfigKind)
			}
			return nil, d.fail(fmt.Sprintf("got %q, want %s", d.raw.Kind, want), nil, "kind")
		}
		if d.raw.Version != PolicyVersion {
			return nil, d.fail(fmt.Sprintf("got %q, want %q", d.raw.Version, PolicyVersion), nil, "version")
		}
	}
	if m.ver == nil {
		return nil, m.cfg.fail("an autoupdate_config needs an autoupdate_version document in the same file", nil, "kind")
	}
	if m.ver.raw.Spec == nil || m.ver.raw.Spec.Agents == nil {
		return nil, m.ver.fail("is required", nil, "spec", "agents")
	}
	if md := m.ver.raw.Metadata; md != nil {
		m.revision = md.Revision
	}
	a := *m.ver.raw.Spec.Agents
	m.agents = &a
	if a.Schedules != nil || a.MaintenanceWindowDuration != "" {
		field := "schedules"
		if a.Schedules == nil {
			field = "maintenance_window_duration"
		}
		return nil, m.ver.fail("belongs in an autoupdate_config document (this project's own resource uses groups with window and duration)", nil, "spec", "agents", field)
	}
	if m.cfg == nil || m.cfg.raw.Spec == nil || m.cfg.raw.Spec.Agents == nil {
		return m, nil
	}
	return m, m.mergeConfig(m.cfg.raw.Spec.Agents)
}

// mergeConfig merges the agents section c of the autoupdate_config.
func (m *merged) mergeConfig(c *rawAgents) error {
	forbidden := []struct {
		name string
		set  bool
	}{
		{"target_version", c.TargetVersion != ""}, {"start_version", c.StartVersion != ""},
		{"schedule", c.Schedule != ""}, {"jitter_seconds", c.JitterSeconds != nil},
		{"edition", c.Edition != nil}, {"fips", c.FIPS != nil}, {"groups", c.Groups != nil},
	}
	for _, f := range forbidden {
		if f.set {
			return m.cfg.fail("belongs in the autoupdate_version document", nil, "spec", "agents", f.name)
		}
	}
	a := m.agents
	if c.Schedules != nil && a.Groups != nil {
		return m.cfg.fail("the autoupdate_version document defines groups already: keep one of the two", nil, "spec", "agents", "schedules")
	}
	twice := func(field string) error {
		return m.cfg.fail("is set in both documents: keep one", nil, "spec", "agents", field)
	}
	if c.Strategy != "" {
		if a.Strategy != "" {
			return twice("strategy")
		}
		a.Strategy, m.fromCfg["strategy"] = c.Strategy, true
	}
	if c.HaltFailurePercent != nil {
		if a.HaltFailurePercent != nil {
			return twice("halt_failure_percent")
		}
		a.HaltFailurePercent, m.fromCfg["halt_failure_percent"] = c.HaltFailurePercent, true
	}
	if c.HaltMinHosts != nil {
		if a.HaltMinHosts != nil {
			return twice("halt_min_hosts")
		}
		a.HaltMinHosts, m.fromCfg["halt_min_hosts"] = c.HaltMinHosts, true
	}
	if c.MaintenanceWindowDuration != "" {
		a.MaintenanceWindowDuration, m.fromCfg["maintenance_window_duration"] = c.MaintenanceWindowDuration, true
	}
	if c.Mode != "" && modeRank(c.Mode) >= modeRank(a.Mode) {
		a.Mode, m.fromCfg["mode"] = c.Mode, true
	}
	return nil
}

// modeRank orders modes as Teleport combines them: an unknown mode ranks
// highest, so that it is the one reported as invalid.
func modeRank(mode string) int {
	switch Mode(mode) {
	case "":
		return 0
	case ModeEnabled:
		return 1
	case ModeSuspended:
		return 2
	case ModeDisabled:
		return 3
	}
	return 4
}
