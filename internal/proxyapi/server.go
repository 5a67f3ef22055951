package proxyapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/endpoint"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// CensusBackend stores census reports. census/store.Store implements it.
type CensusBackend interface {
	// Ingest stores r, already decoded by api.DecodeReport and signed by
	// id (the signature verified), under group (the token's group wins
	// over the report's). A report the backend refuses returns an error
	// wrapping api.ErrInvalidReport (answered 400) or, when it conflicts
	// with its host's binding, api.ErrHostConflict (answered 409); nothing
	// is stored then.
	Ingest(ctx context.Context, group string, r api.Report, id api.Identity, now time.Time) error
	// Summary aggregates the stored reports; hosts not seen for staleAfter
	// are listed as stale.
	Summary(ctx context.Context, now time.Time, staleAfter time.Duration) (*api.Summary, error)
}

// Server limits and defaults.
const (
	// DefaultReloadInterval is how often Watch looks at the policy file.
	DefaultReloadInterval = 500 * time.Millisecond
	// DefaultStaleAfter is the census summary's default silence limit.
	DefaultStaleAfter = 24 * time.Hour
	// maxInstallScript caps the install script template.
	maxInstallScript = 1 << 20
	// maxQueryLen caps the raw query string of find and install.sh.
	maxQueryLen = 1024
)

// Config configures a Server.
type Config struct {
	// PolicyFile is the autoupdate_version resource (required). It must be
	// valid at New; later changes are picked up by Watch or Reload.
	PolicyFile string
	// Tokens are the static enrollment tokens (see LoadTokens). Without
	// tokens every census request is refused.
	Tokens []Token
	// TokensFile, instead of Tokens, is the tokens file: read at New (it
	// must be valid and safe then), then again by ReloadTokens and Watch.
	TokensFile string
	// TrustedProxies are the load balancers whose X-Forwarded-For names the
	// client (see ParseTrustedProxies). Empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	// Census stores census reports; nil disables census (404).
	Census CensusBackend
	// CensusAllowUnsigned accepts census reports without a signature from
	// hosts that have not bound a key yet, as agents of builds older than
	// signed reports send them: for moving a fleet over. Such reports bind
	// nothing; a host whose key is bound must still sign.
	CensusAllowUnsigned bool
	// CensusUnavailable, when not nil, says census is configured but its
	// database could not be opened (Census is nil then): census requests
	// answer 503 and ReadyPath reports the proxy not ready.
	CensusUnavailable error
	// CensusHealth, when set, reports the census writer: since when its
	// writes have failed without one succeeding, and the latest error; a
	// zero time while writes succeed. ReadyPath reports the proxy not ready
	// once writes have failed for CensusFailingFor.
	CensusHealth func() (since time.Time, err error)
	// CensusStaleAfter is the default silence after which the summary lists
	// a host as stale (default DefaultStaleAfter); the summary's
	// stale_after query parameter overrides it.
	CensusStaleAfter time.Duration
	// InstallScript is the text/template of install.sh (fields ProxyAddr,
	// Group, Version, BaseURL, PublicKey; each placed inside single quotes).
	// Empty: install.sh is not served (404).
	InstallScript []byte
	// InstallPublicKeyPEM is the PEM public key filled into install.sh.
	InstallPublicKeyPEM []byte
	// PublicAddr is the proxy's host:port as agents reach it, filled into
	// install.sh. Empty: the request's Host.
	PublicAddr string
	// BaseURL is the https:// CDN base filled into install.sh; empty means
	// the script's built-in default.
	BaseURL string
	// Edition ("community", "oss" or "ent"; empty means community) and
	// FIPS are the Teleport build the find answer tells agents to run, unless
	// the policy resource sets spec.agents.edition or fips, which then win.
	// FIPS implies Enterprise.
	Edition string
	FIPS    bool
	// Logger receives access logs and reload messages (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registry receives the metrics and is served at /metrics. Nil: a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	// ReloadInterval is how often Watch polls the policy file (default
	// DefaultReloadInterval).
	ReloadInterval time.Duration
	// Rollout keeps the staged rollout's state (the census store); nil
	// with a policy that sets start_version serves every group the start
	// version.
	Rollout rollout.Store
	// RolloutEvery is how often RunRollout evaluates the rollout (default
	// DefaultRolloutEvery); RolloutPresentAfter how recently a host must
	// have reported to count as present (default
	// DefaultRolloutPresentAfter).
	RolloutEvery, RolloutPresentAfter time.Duration
	// RolloutRefreshEvery is how often RunRollout re-reads the groups'
	// states between evaluations (default DefaultRolloutRefreshEvery).
	RolloutRefreshEvery time.Duration
}

// Server is the proxy API. It is safe for concurrent use.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	now     func() time.Time
	tokens  tokenStore
	logs    logLimits
	limiter *failLimiter
	metrics *metrics
	reg     *prometheus.Registry
	script  *template.Template
	handler http.Handler

	state atomic.Pointer[state]
	// refused is set while the policy file's content is refused and the
	// last good policy keeps serving.
	refused atomic.Bool
	conns   *connMetrics

	// reloadMu serializes reloads; seen is the hash of the file content
	// last acted on (installed or refused), candidate the hash of a content
	// the watcher has seen once and not acted on yet (it may be half
	// written).
	reloadMu  sync.Mutex
	seen      [sha256.Size]byte
	candidate [sha256.Size]byte

	// roll is the rollout view find serves from; rollMu serializes
	// evaluations; rollKick asks RunRollout to evaluate now.
	roll     atomic.Pointer[rolloutView]
	rollMu   sync.Mutex
	rollKick chan struct{}
}

// state is one accepted policy with its precomputed answers.
type state struct {
	policy *Policy
	hash   [sha256.Size]byte
	// groups maps each group name to its cached answer; def is the answer
	// for empty or unknown groups (the last group).
	groups map[string]*groupAnswer
	def    *groupAnswer
}

// groupAnswer caches the JSON find answer of one group until it changes.
type groupAnswer struct {
	policy *Policy
	group  *Group
	// edition and fips are the build the agents run.
	edition string
	fips    bool
	// cached holds one answer per answerKind.
	cached [answerKinds]atomic.Pointer[answer]
}

// answer is valid from from (the instant it was computed; a clock that
// steps back recomputes it) until until (zero: as long as the policy).
type answer struct {
	body        []byte
	from, until time.Time
}

// New builds a Server. It fails when the policy file is missing or invalid,
// a token is invalid (see CheckTokens), the install script template does
// not parse, the public key is not PEM, or BaseURL is not https.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, logger: cfg.Logger, now: cfg.Now, limiter: newFailLimiter(), rollKick: make(chan struct{}, 1)}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.ReloadInterval <= 0 {
		s.cfg.ReloadInterval = DefaultReloadInterval
	}
	if s.cfg.RolloutEvery <= 0 {
		s.cfg.RolloutEvery = DefaultRolloutEvery
	}
	if s.cfg.RolloutRefreshEvery <= 0 {
		s.cfg.RolloutRefreshEvery = DefaultRolloutRefreshEvery
	}
	if s.cfg.RolloutPresentAfter <= 0 {
		s.cfg.RolloutPresentAfter = DefaultRolloutPresentAfter
	}
	if s.cfg.CensusStaleAfter <= 0 {
		s.cfg.CensusStaleAfter = DefaultStaleAfter
	}
	if cfg.PolicyFile == "" {
		return nil, errors.New("new proxy API: no policy file configured")
	}
	p, data, err := LoadPolicy(cfg.PolicyFile)
	if err != nil {
		return nil, fmt.Errorf("new proxy API: %w", err)
	}
	if err := s.initAuth(); err != nil {
		return nil, fmt.Errorf("new proxy API: %w", err)
	}
	if cfg.BaseURL != "" {
		// The agent's own rule: install.sh must never carry a base URL
		// the agent it installs would refuse.
		if err := endpoint.ValidateBaseURL(cfg.BaseURL); err != nil {
			return nil, fmt.Errorf("new proxy API: %w", err)
		}
	}
	if _, err := api.ParseEdition(cfg.Edition); err != nil {
		return nil, fmt.Errorf("new proxy API: %w", err)
	}
	if cfg.PublicAddr != "" {
		if err := endpoint.ValidateHostPort(cfg.PublicAddr); err != nil {
			return nil, fmt.Errorf("new proxy API: public address: %w", err)
		}
	}
	if len(cfg.InstallScript) > 0 {
		if len(cfg.InstallScript) > maxInstallScript {
			return nil, fmt.Errorf("new proxy API: install script is larger than %d bytes", maxInstallScript)
		}
		if s.script, err = template.New("install.sh").Option("missingkey=error").Parse(string(cfg.InstallScript)); err != nil {
			return nil, fmt.Errorf("new proxy API: parse install script template: %w", err)
		}
		block, rest := pem.Decode(cfg.InstallPublicKeyPEM)
		if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) > 0 {
			return nil, errors.New("new proxy API: the install script needs exactly one PEM PUBLIC KEY block")
		}
	}
	s.reg = cfg.Registry
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if s.metrics, err = newMetrics(s.reg); err != nil {
		return nil, fmt.Errorf("new proxy API: register metrics: %w", err)
	}
	if s.conns, err = newConnMetrics(s.reg); err != nil {
		return nil, fmt.Errorf("new proxy API: register metrics: %w", err)
	}
	s.install(p, sha256.Sum256(data))
	s.warnTokenGroups(p)
	s.handler = s.routes()
	return s, nil
}

// install makes p the policy in effect.
func (s *Server) install(p *Policy, hash [sha256.Size]byte) {
	st := &state{policy: p, hash: hash, groups: make(map[string]*groupAnswer, len(p.Groups))}
	edition, fips := s.flavour(p)
	for i := range p.Groups {
		st.groups[p.Groups[i].Name] = &groupAnswer{policy: p, group: &p.Groups[i], edition: edition, fips: fips}
	}
	if len(p.Groups) > 0 {
		st.def = st.groups[p.Groups[len(p.Groups)-1].Name]
	} else {
		st.def = &groupAnswer{policy: p, edition: edition, fips: fips}
	}
	s.seen = hash
	s.refused.Store(false)
	s.state.Store(st)
	s.metrics.setPolicy(p)
	if p.Rollout() {
		s.kickRollout()
	}
}

// flavour is the edition and FIPS setting served with p: the resource's
// when it sets them, the server's otherwise. FIPS builds are Enterprise.
func (s *Server) flavour(p *Policy) (edition string, fips bool) {
	if p.FlavourSet {
		return p.Edition, p.FIPS
	}
	edition, _ = api.ParseEdition(s.cfg.Edition) // checked by New
	if s.cfg.FIPS {
		edition = api.EditionEnterprise
	}
	return edition, s.cfg.FIPS
}

// Policy returns the policy in effect.
func (s *Server) Policy() *Policy { return s.state.Load().policy }

// Reload reads the policy file and, if its content changed, parses it. A
// valid policy takes effect at once (requests in flight finish with the
// old one); an invalid one is refused: the error is logged, counted in
// teleport_update_policy_rejects_total, returned, and the last good policy
// keeps serving. Reload returns nil when the content is unchanged. The file
// must be a regular file; a named pipe or device is refused without
// waiting on it.
func (s *Server) Reload() error {
	return s.reload(false)
}

// reload implements Reload and each look of Watch. With settle, a changed
// content is acted on only when the previous look saw the same bytes: a
// file caught half written by a non-atomic save is often a valid policy
// itself (one group of two, a version or duration cut short), and must
// neither be served nor counted as a reject.
func (s *Server) reload(settle bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	data, readErr := capread.RegularFile(s.cfg.PolicyFile, MaxPolicySize)
	hash := sha256.Sum256(data)
	if readErr != nil {
		hash = sha256.Sum256([]byte("unreadable: " + readErr.Error()))
	}
	if hash == s.seen {
		s.candidate = [sha256.Size]byte{}
		return nil
	}
	if settle && hash != s.candidate {
		s.candidate = hash
		s.logger.Debug("Policy file changed; it takes effect once unchanged on the next look.", "path", s.cfg.PolicyFile)
		return nil
	}
	s.candidate = [sha256.Size]byte{}
	if readErr != nil {
		return s.reject(hash, fmt.Errorf("read policy: %w", readErr))
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return s.reject(hash, fmt.Errorf("parse policy %s: %w", s.cfg.PolicyFile, err))
	}
	old := s.state.Load().policy
	s.install(p, hash)
	s.metrics.reloads.Inc()
	s.logger.Info("Policy reloaded.",
		"path", s.cfg.PolicyFile,
		"target_version", p.TargetVersion.String(),
		"previous_version", old.TargetVersion.String(),
		"mode", string(p.Mode),
		"schedule", string(p.Schedule),
		"groups", len(p.Groups))
	return nil
}

// reject records a refused content (hash) of the policy file.
func (s *Server) reject(hash [sha256.Size]byte, err error) error {
	s.seen = hash
	s.refused.Store(true)
	s.metrics.rejects.Inc()
	s.logger.Error("Policy file refused; the last good policy keeps serving.",
		"path", s.cfg.PolicyFile,
		"error", err.Error(),
		"target_version", s.state.Load().policy.TargetVersion.String())
	return err
}

// Watch looks at the policy file every ReloadInterval until ctx is done;
// then it returns nil. A changed content takes effect, or is refused, once
// two looks in a row have seen it unchanged, so a file being written in
// place is never served half written. Problems are logged and counted (see
// Reload), never returned. It polls the tokens file too (see ReloadTokens).
func (s *Server) Watch(ctx context.Context) error {
	t := time.NewTicker(s.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = s.reload(true) // logged and counted by reload
			s.pollTokens()
		}
	}
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.handler }

// Registry returns the registry the metrics are registered with.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// routedFunc serves a request and returns the status code it wrote.
type routedFunc func(w http.ResponseWriter, r *http.Request) int

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern, route string, f routedFunc) {
		mux.Handle(pattern, s.instrument(route, f))
	}
	find := s.instrument(routeFind, s.serveFind)
	mux.Handle(api.FindPath, find)
	mux.Handle(LegacyFindPath, find)
	handle(InstallScriptPath, routeInstallScript, s.serveInstallScript)
	handle(api.CensusPath, routeCensus, s.censusGuard(s.serveCensus))
	handle(api.CensusSummaryPath, routeCensusSummary, s.censusGuard(s.serveCensusSummary))
	handle(RolloutPath, routeRollout, s.serveRollout)
	handle(RolloutPath+"/", routeRollout, s.serveRollout)
	handle(HealthPath, routeHealth, s.serveHealth)
	handle(ReadyPath, routeReady, s.serveReady)
	prom := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
	handle(MetricsPath, routeMetrics, func(w http.ResponseWriter, r *http.Request) int {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		prom.ServeHTTP(rec, r)
		return rec.code
	})
	handle("/", routeOther, func(w http.ResponseWriter, r *http.Request) int {
		return writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	// Agents poll find far more than anything else: skip the mux for it.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == api.FindPath {
			find.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// instrument records metrics and the access log of every request, at the
// level accessLevel gives; every readiness probe is logged at debug.
func (s *Server) instrument(route string, f routedFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := f(w, r)
		d := time.Since(start)
		s.metrics.record(route, code, d)
		level := accessLevel(code)
		// Probes of /readyz repeat every few seconds whatever the answer;
		// what makes it 503 is logged where it happens.
		if route == routeReady {
			level = slog.LevelDebug
		}
		if !s.logger.Enabled(r.Context(), level) {
			return
		}
		s.logger.LogAttrs(r.Context(), level, "Request served.",
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("code", code),
			slog.Duration("duration", d),
			slog.String("remote", r.RemoteAddr))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// writeJSON writes v as JSON with code.
func writeJSON(w http.ResponseWriter, code int, v any) int {
	body, err := json.Marshal(v)
	if err != nil {
		return writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
	return code
}

// writeError writes {"error": msg} with code.
func writeError(w http.ResponseWriter, code int, msg string) int {
	body, _ := json.Marshal(ErrorResponse{Error: msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
	return code
}

// allowMethods answers 405 unless r's method is one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) (int, bool) {
	for _, m := range methods {
		if r.Method == m {
			return 0, true
		}
	}
	allow := ""
	for i, m := range methods {
		if i > 0 {
			allow += ", "
		}
		allow += m
	}
	w.Header().Set("Allow", allow)
	return writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed; use "+allow), false
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) int {
	if code, ok := allowMethods(w, r, http.MethodGet, http.MethodHead); !ok {
		return code
	}
	p := s.Policy()
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "target_version": p.TargetVersion.String()})
}

// remoteAddr returns the client address of r (the TCP peer; forwarding
// headers are not trusted).
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
