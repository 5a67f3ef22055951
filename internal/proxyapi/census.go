package proxyapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/httpsig"
)

// maxStaleAfter bounds the summary's stale_after parameter.
const maxStaleAfter = 366 * 24 * time.Hour

// authenticate checks the request's Bearer token. On failure it writes the
// answer and returns its code and false:
//   - 401 for a missing, malformed or unknown token;
//   - 403 for a token used from outside its CIDRs;
//   - 429 with Retry-After instead, when the client has failed too often.
//
// The token is checked first, and only failures count against the client
// (its IPv4 address or IPv6 /64, see clientAddr and limitKey): a valid
// token is accepted from an address others are failing from, as behind a
// NAT or a load balancer. Tokens are at least MinTokenLen characters, too
// long to guess, so failures need no limit to protect them; it spares the
// server and its log. Failures are logged at debug; a client that becomes
// blocked is logged at warn, a bounded number of times a minute.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (tokenEntry, int, bool) {
	addr := s.clientAddr(r)
	tok, code, msg := s.checkToken(r, addr)
	if code == 0 {
		return tok, 0, true
	}
	now := s.now()
	if wait, blocked := s.limiter.blocked(addr, now); blocked {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return tokenEntry{}, writeError(w, http.StatusTooManyRequests, "too many failed authentication attempts from this address; retry later"), false
	}
	if s.limiter.fail(addr, now) {
		logLimited(r.Context(), s.logger, s.logs.blocked, slog.LevelWarn,
			"Too many failed authentication attempts; the client's failures get 429 for a while.",
			"client", limitKey(addr).String(), "remote", r.RemoteAddr, "code", code, "reason", msg)
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="teleport-update"`)
	}
	s.logger.Debug("Authentication failed.", "client", addr.String(), "remote", r.RemoteAddr, "code", code, "reason", msg)
	return tokenEntry{}, writeError(w, code, msg), false
}

// checkToken finds r's Bearer token among the tokens in effect and checks
// addr may use it. It returns the token, or the failure's code and message.
func (s *Server) checkToken(r *http.Request, addr netip.Addr) (tokenEntry, int, string) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return tokenEntry{}, http.StatusUnauthorized, "an enrollment token is required: Authorization: Bearer <token>"
	}
	scheme, secret, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" || len(secret) > MaxTokenLen {
		return tokenEntry{}, http.StatusUnauthorized, "the Authorization header must be Bearer <token>"
	}
	tok, ok := lookupToken(s.tokenEntries(), secret)
	if !ok {
		return tokenEntry{}, http.StatusUnauthorized, "the enrollment token is not valid"
	}
	if !tok.allows(addr) {
		return tokenEntry{}, http.StatusForbidden, "the enrollment token is not allowed from this address"
	}
	return tok, 0, ""
}

// Clock limits of a signed census report, against the proxy's clock: a
// report is sent as soon as it is signed, so anything much older is a
// replay or a stuck queue, and anything from the future a wrong clock.
const (
	maxReportAge    = time.Hour
	maxReportFuture = 5 * time.Minute
)

// serveCensus takes an agent's census report: POST with a Bearer
// enrollment token and a JSON body of at most api.MaxReportSize bytes,
// signed by the host's key (package httpsig), decoded strictly
// (api.DecodeReport) before the backend sees it. The token's group must be
// in the policy (403 otherwise; the agent retries later). Answers 202 when
// stored, 400 for an invalid report or a signing time out of bounds, 401
// for a missing or bad signature, 409 when the report conflicts with its
// host's binding (another key, another group, a replay), 413 for a body
// over the cap, 404 when census is disabled.
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
	report, id, code, msg := s.readSignedReport(w, r)
	if code != 0 {
		s.logger.Debug("Census report refused.", "group", tok.group, "remote", r.RemoteAddr, "code", code, "reason", msg)
		return writeError(w, code, msg)
	}
	if err := s.cfg.Census.Ingest(r.Context(), tok.group, report, id, s.now()); err != nil {
		return s.ingestFailed(w, r, tok.group, err)
	}
	return writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted"})
}

// ingestFailed answers a report the backend did not store.
func (s *Server) ingestFailed(w http.ResponseWriter, r *http.Request, group string, err error) int {
	switch {
	case errors.Is(err, api.ErrInvalidReport):
		return writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, api.ErrHostConflict):
		s.logger.Debug("Census report conflicts with its host's binding.", "group", group, "remote", r.RemoteAddr, "error", err.Error())
		return writeError(w, http.StatusConflict, err.Error())
	case r.Context().Err() != nil:
		// The backend may still commit the report after the client
		// went away (it is queued), or may not.
		logLimited(r.Context(), s.logger, s.logs.unknown, slog.LevelWarn,
			"Census report outcome unknown: the client went away before it was stored.",
			"group", group, "remote", r.RemoteAddr, "error", err.Error())
	default:
		logLimited(r.Context(), s.logger, s.logs.census, slog.LevelError,
			"Census report not stored.", "group", group, "error", err.Error())
	}
	return writeError(w, http.StatusServiceUnavailable, "the census report could not be stored; retry later")
}

// readSignedReport reads r's body, verifies its signature and the signing
// time, and decodes it as a census report. On failure it returns the
// status to answer and the message.
func (s *Server) readSignedReport(w http.ResponseWriter, r *http.Request) (api.Report, api.Identity, int, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxReportSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return api.Report{}, api.Identity{}, http.StatusRequestEntityTooLarge, fmt.Sprintf("the census report is larger than %d bytes", api.MaxReportSize)
		}
		return api.Report{}, api.Identity{}, http.StatusBadRequest, "read census report: " + err.Error()
	}
	now := s.now()
	var id api.Identity
	if s.cfg.CensusAllowUnsigned && unsigned(r.Header) {
		s.logger.Debug("Unsigned census report accepted for a host without a bound key.", "remote", r.RemoteAddr)
	} else {
		sig, err := httpsig.Verify(r.Method, r.URL.EscapedPath(), r.Header, body)
		if err != nil {
			return api.Report{}, api.Identity{}, http.StatusUnauthorized, "census reports must be signed by the host's key (update teleport-update on this host): " + err.Error()
		}
		if msg := checkTime("the signature's created time", sig.Created, now); msg != "" {
			return api.Report{}, api.Identity{}, http.StatusBadRequest, msg
		}
		id = api.Identity{Key: sig.Key, Seq: sig.Seq}
	}
	report, err := api.DecodeReport(body)
	if err != nil {
		return api.Report{}, api.Identity{}, http.StatusBadRequest, err.Error()
	}
	if report.ReportedAt.After(now.Add(maxReportFuture)) {
		return api.Report{}, api.Identity{}, http.StatusBadRequest, fmt.Sprintf("reported_at %s is more than %s ahead of the proxy's clock", report.ReportedAt.UTC().Format(time.RFC3339), maxReportFuture)
	}
	return report, id, 0, ""
}

// unsigned reports whether a request carries none of the signature
// headers; one with some of them is verified, and refused if incomplete.
func unsigned(h http.Header) bool {
	for _, name := range []string{httpsig.HeaderSignatureInput, httpsig.HeaderSignature, httpsig.HeaderContentDigest} {
		if len(h.Values(name)) > 0 {
			return false
		}
	}
	return true
}

// checkTime says what is wrong with a signing time t at now, or "".
func checkTime(what string, t, now time.Time) string {
	switch {
	case t.After(now.Add(maxReportFuture)):
		return fmt.Sprintf("%s %s is more than %s ahead of the proxy's clock; check the host's clock", what, t.UTC().Format(time.RFC3339), maxReportFuture)
	case t.Before(now.Add(-maxReportAge)):
		return fmt.Sprintf("%s %s is more than %s old", what, t.UTC().Format(time.RFC3339), maxReportAge)
	}
	return ""
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
