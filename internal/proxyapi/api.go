// Package proxyapi is the HTTP API a proxy serves to agents: the find
// endpoint (target version, maintenance window, jitter), the install script,
// census intake with static enrollment tokens, health and metrics. The policy
// comes from an autoupdate_version resource file that is reloaded when it
// changes. What travels between agent and proxy (the find answer, the census
// report and summary, their paths) is defined in package api; Serve runs the
// whole server process.
package proxyapi

// Paths served by the API besides api.FindPath, api.CensusPath and
// api.CensusSummaryPath.
const (
	// LegacyFindPath is api.FindPath at Teleport's older path.
	LegacyFindPath = "/webapi/find"
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
