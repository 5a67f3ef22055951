package api

import "time"

// Keys used in Summary counts for a field a host did not report.
const (
	// SummaryUnknown counts hosts that left version, OS or architecture
	// empty.
	SummaryUnknown = "unknown"
	// SummaryNone counts hosts without a container runtime, cloud or last
	// update result.
	SummaryNone = "none"
	// SummaryOther counts the hosts of the rarest values of a field that
	// has more than MaxSummaryValues distinct values.
	SummaryOther = "other"
)

// MaxSummaryValues bounds the keys of each map of a Summary: a field with
// more distinct values keeps the MaxSummaryValues-1 most common and counts
// the rest under SummaryOther, so that hosts reporting made-up values
// cannot blow up the summary.
const MaxSummaryValues = 100

// Last update results as counted in Summary.ByLastUpdateResult.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
	ResultNone    = SummaryNone
)

// MaxStaleListed bounds Summary.Stale; StaleHosts has the full count.
const MaxStaleListed = 1000

// Summary is the proxy's view of its fleet, built from the latest report of
// every host. Every map counts hosts by the named field; a host with several
// install methods counts once under each.
type Summary struct {
	// GeneratedAt is the proxy time the summary was computed at.
	GeneratedAt time.Time `json:"generated_at"`
	// StaleAfter is how long a host may stay silent before it is stale, as
	// a Go duration string ("24h0m0s").
	StaleAfter string `json:"stale_after"`
	// TotalHosts counts every host with a stored report, stale ones included.
	TotalHosts int `json:"total_hosts"`

	ByVersion          map[string]int `json:"by_version"`
	ByGroup            map[string]int `json:"by_group"`
	ByOS               map[string]int `json:"by_os"` // keyed by os_version ("Ubuntu 22.04"), else os
	ByArchitecture     map[string]int `json:"by_architecture"`
	ByInstallMethod    map[string]int `json:"by_install_method"`
	ByContainerRuntime map[string]int `json:"by_container_runtime"`
	ByCloud            map[string]int `json:"by_cloud"`
	ByUpdaterStatus    map[string]int `json:"by_updater_status"`
	ByLastUpdateResult map[string]int `json:"by_last_update_result"` // success | failure | none

	// Groups breaks the hosts of each update group down by version and last
	// update result: how far a rollout got in the group and how it went.
	Groups map[string]*GroupSummary `json:"groups"`

	// StaleHosts counts hosts last seen before GeneratedAt - StaleAfter.
	StaleHosts int `json:"stale_hosts"`
	// Stale lists up to MaxStaleListed of them, longest silent first.
	Stale []StaleHost `json:"stale"`
}

// GroupSummary counts the hosts of one update group.
type GroupSummary struct {
	Hosts              int            `json:"hosts"`
	ByVersion          map[string]int `json:"by_version"`
	ByLastUpdateResult map[string]int `json:"by_last_update_result"`
}

// Group returns the summary of group name, creating it empty.
func (s *Summary) Group(name string) *GroupSummary {
	g, ok := s.Groups[name]
	if !ok {
		g = &GroupSummary{ByVersion: map[string]int{}, ByLastUpdateResult: map[string]int{}}
		s.Groups[name] = g
	}
	return g
}

// StaleHost is a host that has not reported for longer than StaleAfter.
type StaleHost struct {
	HostID   string    `json:"host_id"`
	Group    string    `json:"group"`
	Version  string    `json:"version"`
	LastSeen time.Time `json:"last_seen"`
}

// NewSummary returns a Summary with every map allocated, so JSON shows {}
// rather than null for an empty fleet.
func NewSummary(now time.Time, staleAfter time.Duration) *Summary {
	return &Summary{
		GeneratedAt:        now.UTC(),
		StaleAfter:         staleAfter.String(),
		ByVersion:          map[string]int{},
		ByGroup:            map[string]int{},
		ByOS:               map[string]int{},
		ByArchitecture:     map[string]int{},
		ByInstallMethod:    map[string]int{},
		ByContainerRuntime: map[string]int{},
		ByCloud:            map[string]int{},
		ByUpdaterStatus:    map[string]int{},
		ByLastUpdateResult: map[string]int{},
		Groups:             map[string]*GroupSummary{},
		Stale:              []StaleHost{},
	}
}
