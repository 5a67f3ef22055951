// Package api is what an agent and its proxy exchange: the find answer
// (which version a group runs and when), the census report an agent sends
// with its strict decoder, and the census summary the proxy computes from
// them, plus the paths they travel on.
//
// Both sides import it; it imports neither, so an agent binary never links
// the proxy's server code and the proxy never links the agent's probes.
package api

import (
	"errors"
	"fmt"
	"time"
)

// Paths of the proxy's update API.
const (
	// FindPath answers which version a group should run and whether its
	// maintenance window is open (GET, query parameters FindQueryGroup and
	// FindQueryHost; answer FindResponse).
	FindPath = "/v1/webapi/find"
	// CensusPath takes an agent's census report (POST a Report as JSON,
	// with the enrollment token as a Bearer token).
	CensusPath = "/v1/webapi/census"
	// CensusSummaryPath answers the fleet's Summary (GET, admin Bearer
	// token, optional query parameter stale_after, a Go duration).
	CensusSummaryPath = "/v1/webapi/census/summary"
)

// Query parameters of FindPath.
const (
	// FindQueryGroup is the update group the agent is in; empty or unknown
	// means the proxy's default (last) group.
	FindQueryGroup = "group"
	// FindQueryHost identifies the agent (reserved for canary selection).
	FindQueryHost = "host"
	// FindQueryUpdaterID is the updater's random id (ValidUpdaterID), kept
	// in its update.yaml: the proxy serves a group's target to the
	// group's canaries before the rest, and recognises them by it.
	FindQueryUpdaterID = "updater_id"
)

// FindResponse is the JSON answer of FindPath, compatible with Teleport's
// webapi find response (clients ignore unknown fields).
type FindResponse struct {
	AutoUpdate AutoUpdateSettings `json:"auto_update"`
	// Edition is the cluster's Teleport edition, which the agents run too:
	// EditionCommunity, EditionOSS or EditionEnterprise. Teleport sends it
	// next to auto_update, not inside it; empty means community.
	Edition string `json:"edition"`
	// FIPS is true when the cluster runs FIPS builds; its agents must too.
	// A FIPS build is always an Enterprise build.
	FIPS bool `json:"fips"`
}

// Teleport editions, as the find answer names them. Community and "oss"
// are the same build.
const (
	EditionCommunity  = "community"
	EditionOSS        = "oss"
	EditionEnterprise = "ent"
)

// ErrInvalidEdition means an edition name is none of the Edition values.
var ErrInvalidEdition = errors.New("invalid edition")

// MaxEditionLength bounds an edition name quoted in an error.
const MaxEditionLength = 32

// ParseEdition checks an edition name and returns it canonical:
// EditionEnterprise, or EditionCommunity for "", "community" and "oss".
// Anything else wraps ErrInvalidEdition.
func ParseEdition(s string) (string, error) {
	switch s {
	case "", EditionCommunity, EditionOSS:
		return EditionCommunity, nil
	case EditionEnterprise:
		return EditionEnterprise, nil
	}
	if len(s) > MaxEditionLength {
		s = s[:MaxEditionLength] + "…"
	}
	return "", fmt.Errorf("%w: %q (want community, oss or ent)", ErrInvalidEdition, s)
}

// AutoUpdateSettings tells an agent what to run and when.
type AutoUpdateSettings struct {
	// AgentVersion is the target version, semver without a leading "v".
	AgentVersion string `json:"agent_version"`
	// AgentAutoUpdate is true when the agent should update now: its group's
	// window is open at the proxy's clock, or the schedule is immediate, and
	// the mode is enabled.
	AgentAutoUpdate bool `json:"agent_auto_update"`
	// AgentUpdateJitterSeconds is the upper bound of the random delay
	// ([0, jitter)) the agent waits before updating.
	AgentUpdateJitterSeconds int `json:"agent_update_jitter_seconds"`
	// AgentUpdateWindow is the group's current window, or the next one when
	// none is open. Absent with schedule immediate.
	AgentUpdateWindow *UpdateWindow `json:"agent_update_window,omitempty"`
	// AgentUpdateMode is the policy mode: enabled, disabled or suspended.
	AgentUpdateMode string `json:"agent_update_mode,omitempty"`
	// AgentUpdateGroup is the group the answer was computed for (the
	// requested group, or the last group when that was unknown or empty).
	AgentUpdateGroup string `json:"agent_update_group,omitempty"`
	// AgentUpdateHold says, in a staged rollout, why the agent is served
	// the rollout's start version instead of its target: the group's turn
	// has not come, it tries the target on its canaries first, the
	// rollout is halted or was rolled back. Empty otherwise. Teleport's
	// proxies do not send it; agents show it (at most MaxHoldLength bytes)
	// and act only on the version and agent_auto_update.
	AgentUpdateHold string `json:"agent_update_hold,omitempty"`
}

// MaxHoldLength bounds the hold reason an agent shows.
const MaxHoldLength = 256

// UpdateWindow is a maintenance window: Start is inside it, End is not.
type UpdateWindow struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}
