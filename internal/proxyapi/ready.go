package proxyapi

import (
	"fmt"
	"net/http"
	"time"
)

// CensusFailingFor is how long census writes must have failed, without one
// succeeding, before ReadyPath reports the proxy not ready: one failed
// batch (a moment of lock contention) is not enough.
const CensusFailingFor = 10 * time.Second

// routeReady labels ReadyPath in the request metrics and access log.
const routeReady = "readyz"

// serveReady answers ReadyPath: 200 when ready, 503 with the reasons when
// not. The reasons name the part that failed, not the error itself (the
// log has it): the endpoint is unauthenticated.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) int {
	if code, ok := allowMethods(w, r, http.MethodGet, http.MethodHead); !ok {
		return code
	}
	resp := ReadyResponse{Status: "ready", Reasons: s.notReady(s.now())}
	if s.refused.Load() {
		resp.Warnings = append(resp.Warnings, "policy: the policy file was refused; the last good policy keeps serving")
	}
	if len(resp.Reasons) > 0 {
		resp.Status = "not ready"
		return writeJSON(w, http.StatusServiceUnavailable, resp)
	}
	return writeJSON(w, http.StatusOK, resp)
}

// notReady returns why the server cannot serve all it is configured for
// at now: no policy in effect, a census database that could not be
// opened, or census writes failing for CensusFailingFor or longer.
func (s *Server) notReady(now time.Time) []string {
	var reasons []string
	if st := s.state.Load(); st == nil || st.policy == nil {
		reasons = append(reasons, "policy: no valid policy is loaded")
	}
	if s.cfg.CensusUnavailable != nil {
		reasons = append(reasons, "census: the census database could not be opened (see the proxy's log)")
	}
	if s.cfg.CensusHealth != nil {
		since, err := s.cfg.CensusHealth()
		if failing := now.Sub(since); err != nil && !since.IsZero() && failing >= CensusFailingFor {
			reasons = append(reasons, fmt.Sprintf("census: writes to the census database have failed for %s (see the proxy's log)",
				failing.Round(time.Second)))
		}
	}
	return reasons
}

// censusGuard answers 503 instead of f while the census database is
// unavailable, without logging each request: the cause was logged once at
// start and ReadyPath reports it.
func (s *Server) censusGuard(f routedFunc) routedFunc {
	if s.cfg.CensusUnavailable == nil {
		return f
	}
	return func(w http.ResponseWriter, r *http.Request) int {
		return writeError(w, http.StatusServiceUnavailable, "census is unavailable on this proxy; retry later")
	}
}
