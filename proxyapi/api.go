// Package proxyapi is the HTTP API a proxy serves to agents: the find
// endpoint (target version, maintenance window, jitter), the install script,
// census intake with static enrollment tokens, health and metrics. The policy
// comes from an autoupdate_version resource file that is reloaded when it
// changes.
package proxyapi

import "time"

// Paths served by the API.
const (
	// FindPath answers which version a group should run and whether its
	// maintenance window is open (GET, query parameters group and host).
	FindPath = "/v1/webapi/find"
	// LegacyFindPath is the same endpoint at Teleport's older path.
	LegacyFindPath = "/webapi/find"
	// CensusPath takes an agent's census report (POST, Bearer token).
	CensusPath = "/v1/webapi/census"
	// CensusSummaryPath returns the fleet summary (GET, admin Bearer token).
	CensusSummaryPath = "/v1/webapi/census/summary"
	// InstallScriptPath serves the templated installer (GET, query group).
	InstallScriptPath = "/scripts/install.sh"
	// HealthPath answers 200 while the server runs (liveness).
	HealthPath = "/healthz"
	// ReadyPath answers 200 when the server can serve everything it is
	// configured for, 503 with the reasons otherwise (readiness).
	ReadyPath = "/readyz"
	// MetricsPath serves Prometheus text metrics.
	MetricsPath = "/metrics"
)

// FindResponse is the JSON answer of FindPath, compatible with Teleport's
// webapi find response (clients ignore unknown fields).
type FindResponse struct {
	AutoUpdate AutoUpdateSettings `json:"auto_update"`
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
}

// UpdateWindow is a maintenance window: Start is inside it, End is not.
type UpdateWindow struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// ReadyResponse is the JSON answer of ReadyPath.
type ReadyResponse struct {
	// Status is "ready" (200) or "not ready" (503).
	Status string `json:"status"`
	// Reasons say why the server is not ready.
	Reasons []string `json:"reasons,omitempty"`
	// Warnings name problems that do not stop it serving, such as a policy
	// file that was refused while the last good policy keeps serving.
	Warnings []string `json:"warnings,omitempty"`
}

// ErrorResponse is the JSON body of every 4xx/5xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
}
