package proxyapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/census"
)

// maxStaleAfter bounds the summary's stale_after parameter.
const maxStaleAfter = 366 * 24 * time.Hour

// authenticate checks the request's Bearer token. On failure it writes the
// answer and returns its code and false:
//   - 429 with Retry-After when the client address has failed too often;
//   - 401 for a missing, malformed or unknown token;
//   - 403 for a token used from outside its CIDRs.
//
// Every 401 and 403 counts as a failure for the client address.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (tokenEntry, int, bool) {
	now := s.now()
	addr := remoteAddr(r)
	if wait, blocked := s.limiter.blocked(addr, now); blocked {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return tokenEntry{}, writeError(w, http.StatusTooManyRequests, "too many failed authentication attempts from this address; retry later"), false
	}
	failed := func(code int, msg string) (tokenEntry, int, bool) {
		s.limiter.fail(addr, now)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="teleport-update"`)
		}
		s.logger.Warn("Authentication failed.", "remote", r.RemoteAddr, "code", code, "reason", msg)
		return tokenEntry{}, writeError(w, code, msg), false
	}
	auth := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(auth, " ")
	if auth == "" {
		return failed(http.StatusUnauthorized, "an enrollment token is required: Authorization: Bearer <token>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" || len(secret) > MaxTokenLen {
		return failed(http.StatusUnauthorized, "the Authorization header must be Bearer <token>")
	}
	tok, ok := lookupToken(s.tokens, secret)
	if !ok {
		return failed(http.StatusUnauthorized, "the enrollment token is not valid")
	}
	if !tok.allows(addr) {
		return failed(http.StatusForbidden, "the enrollment token is not allowed from this address")
	}
	return tok, 0, true
}

// serveCensus takes an agent's census report: POST with a Bearer
// enrollment token and a JSON body of at most MaxCensusBody bytes. The
// token's group must be in the policy (403 otherwise; the agent retries
// later). Answers 202 when stored, 400 for an invalid report, 413 for a
// body over the cap, 404 when census is disabled.
func (s *Server) serveCensus(w http.ResponseWriter, r *http.Request) int {
	if code, ok := allowMethods(w, r, http.MethodPost); !ok {
		return code
	}
	if s.cfg.Census == nil {
		return writeError(w, http.StatusNotFound, "census is disabled on this proxy")
	}
	tok, code, ok := s.authenticate(w, r)
	if !ok {
		return code
	}
	if tok.group == "" {
		return writeError(w, http.StatusForbidden, "the token has no group and cannot report a census")
	}
	if !s.Policy().HasGroup(tok.group) {
		return writeError(w, http.StatusForbidden, fmt.Sprintf("token's group %s is not in the policy", tok.group))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCensusBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the census report is larger than %d bytes", MaxCensusBody))
		}
		return writeError(w, http.StatusBadRequest, "read census report: "+err.Error())
	}
	if err := s.cfg.Census.Ingest(r.Context(), tok.group, body, s.now()); err != nil {
		if errors.Is(err, census.ErrInvalidReport) {
			return writeError(w, http.StatusBadRequest, err.Error())
		}
		s.logger.Error("Census report not stored.", "group", tok.group, "error", err.Error())
		return writeError(w, http.StatusServiceUnavailable, "the census report could not be stored; retry later")
	}
	return writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
}

// serveCensusSummary answers the fleet summary to admin tokens (403 for
// other tokens). The optional stale_after query parameter is a Go duration.
func (s *Server) serveCensusSummary(w http.ResponseWriter, r *http.Request) int {
	if code, ok := allowMethods(w, r, http.MethodGet); !ok {
		return code
	}
	if s.cfg.Census == nil {
		return writeError(w, http.StatusNotFound, "census is disabled on this proxy")
	}
	tok, code, ok := s.authenticate(w, r)
	if !ok {
		return code
	}
	if !tok.admin {
		return writeError(w, http.StatusForbidden, "the census summary needs an admin token")
	}
	staleAfter := s.cfg.CensusStaleAfter
	if v := r.URL.Query().Get("stale_after"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxStaleAfter {
			return writeError(w, http.StatusBadRequest, fmt.Sprintf("stale_after %q must be a positive Go duration up to %s", v, maxStaleAfter))
		}
		staleAfter = d
	}
	sum, err := s.cfg.Census.Summary(r.Context(), s.now(), staleAfter)
	if err != nil {
		s.logger.Error("Census summary failed.", "error", err.Error())
		return writeError(w, http.StatusServiceUnavailable, "the census summary is not available; retry later")
	}
	return writeJSON(w, http.StatusOK, sum)
}
