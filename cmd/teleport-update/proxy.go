package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/census/store"
	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/keys"
	"github.com/gravitational/teleport-update/proxyapi"
	"github.com/gravitational/teleport-update/scripts"
)

// proxySubcommands lists the constructors of the `proxy` subcommands; other
// command files append to it in init.
var proxySubcommands []func(*cli) *cobra.Command

func init() {
	commands = append(commands, newProxyCmd)
	proxySubcommands = append(proxySubcommands, newProxyServeCmd)
}

// Limits of proxy serve.
const (
	// proxyShutdownTimeout is how long requests in flight may take to
	// finish after SIGTERM.
	proxyShutdownTimeout = 20 * time.Second
	// proxyStopWait bounds the wait for the policy watcher and the reloads
	// after the server stopped: a read stuck on a hung mount must not keep
	// the process from exiting.
	proxyStopWait = 5 * time.Second
	// maxInstallKeySize caps the --install-key file.
	maxInstallKeySize = 64 << 10
	// maxTLSFileSize caps the --tls-cert and --tls-key files.
	maxTLSFileSize = 1 << 20
	// Defaults of --max-connections and --max-connections-per-ip.
	defaultMaxConns          = 8192
	defaultMaxConnsPerClient = 128
	// fdReserve is how many file descriptors --max-connections leaves for
	// the rest of the process: the census database, the policy file, logs.
	fdReserve = 64
)

func newProxyCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Serve the proxy-side update API",
		Args:  cobra.NoArgs,
	}
	for _, add := range proxySubcommands {
		cmd.AddCommand(add(c))
	}
	return cmd
}

// proxyServeOptions are the flags of proxy serve.
type proxyServeOptions struct {
	resource    string
	listen      string
	tlsCert     string
	tlsKey      string
	tokens      string
	trusted     []netip.Prefix // --trusted-proxies
	censusDB    string
	forgetAfter time.Duration
	publicAddr  string
	baseURL     string
	installKey  string

	censusRequired bool
	conns          proxyapi.ConnLimits
}

func newProxyServeCmd(c *cli) *cobra.Command {
	var o proxyServeOptions
	var trusted string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve find, install.sh and census over HTTPS from a policy file",
		Long: `Serve the update API agents poll (GET /v1/webapi/find), the installer
(GET /scripts/install.sh), census intake (POST /v1/webapi/census, with
--tokens), /healthz and /metrics, over HTTPS with TLS 1.2 or newer.

The policy file (--resource, kind autoupdate_version) must be a regular
file. It is re-read when it changes, and a change takes effect once two looks
half a second apart see the same content (replace it by renaming a complete
file over it to be sure); SIGHUP reads it at once. An invalid change is
refused with a log line and the last good policy keeps serving. SIGHUP also
reloads the TLS certificate and key, independently of the policy.

/healthz answers while the process runs; /readyz answers 503 with the reasons
when the census database could not be opened or its writes keep failing. A
census database that cannot be opened does not stop find and install.sh
unless --census-required is set.

Connections are capped in total and per client address (an IPv6 client by
its /64); behind a load balancer raise or disable (0) the per-address cap.
SIGTERM stops accepting connections and lets requests in flight finish.
Under systemd (Type=notify) READY=1 is sent once the listener is up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.resource == "" || o.tlsCert == "" || o.tlsKey == "" {
				return usageError("proxy serve needs --resource, --tls-cert and --tls-key")
			}
			if o.forgetAfter < 0 {
				return usageError("--census-forget-after must not be negative, got %v", o.forgetAfter)
			}
			if o.censusRequired && o.censusDB == "" {
				return usageError("--census-required needs --census-db")
			}
			if o.conns.Total < 0 || o.conns.PerClient < 0 {
				return usageError("--max-connections and --max-connections-per-ip must not be negative")
			}
			var err error
			if o.trusted, err = proxyapi.ParseTrustedProxies(trusted); err != nil {
				return usageError("--trusted-proxies: %v", err)
			}
			return runProxyServe(cmd.Context(), c.logger(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.resource, "resource", "", "autoupdate_version policy file (required)")
	f.StringVar(&o.listen, "listen", ":3080", "address to listen on (127.0.0.1:0 picks a free port)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate chain, PEM (required)")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS private key, PEM (required)")
	f.StringVar(&o.tokens, "tokens", "", "static enrollment tokens file (YAML, mode 0600) for census intake; reloaded when it changes and on SIGHUP")
	f.StringVar(&trusted, "trusted-proxies", "", "comma-separated CIDRs of load balancers whose X-Forwarded-For names the client")
	f.StringVar(&o.censusDB, "census-db", "", "SQLite census database; without it census intake is disabled")
	f.DurationVar(&o.forgetAfter, "census-forget-after", defaultCensusForgetAfter,
		"delete census hosts not seen for this long, checked hourly (0 keeps them forever)")
	f.StringVar(&o.publicAddr, "public-addr", "", "proxy host:port filled into install.sh (default: the request's Host)")
	f.StringVar(&o.baseURL, "base-url", "", "https:// CDN base filled into install.sh (default: the built-in CDN)")
	f.StringVar(&o.installKey, "install-key", "", "PEM public key install.sh checks signatures with (default: the first embedded release key)")
	f.BoolVar(&o.censusRequired, "census-required", false,
		"refuse to start when --census-db cannot be opened (default: serve find and install.sh without census; /readyz reports it)")
	f.IntVar(&o.conns.Total, "max-connections", defaultMaxConns, "most connections open at once (0: no cap)")
	f.IntVar(&o.conns.PerClient, "max-connections-per-ip", defaultMaxConnsPerClient,
		"most connections open at once from one client address, IPv6 by /64 (0: no cap)")
	return cmd
}

// runProxyServe serves until ctx is done, then shuts down gracefully.
func runProxyServe(ctx context.Context, log *slog.Logger, o proxyServeOptions) error {
	// Before anything that can take a while: SIGHUP's default action ends
	// the process, and config management may send it while the proxy
	// starts. One that arrives now is acted on once serving begins.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg := proxyapi.Config{
		PolicyFile:    o.resource,
		InstallScript: scripts.InstallSH,
		PublicAddr:    o.publicAddr,
		BaseURL:       o.baseURL,
		Logger:        log,
	}
	var err error
	cfg.TokensFile = o.tokens
	cfg.TrustedProxies = o.trusted
	if o.censusDB != "" && o.tokens == "" {
		log.Warn("Census intake is on (--census-db) but no --tokens file is set: every census report will be refused.")
	}
	if cfg.InstallPublicKeyPEM, err = installKey(o.installKey); err != nil {
		return err
	}
	st, err := openProxyCensus(ctx, log, o, &cfg)
	if err != nil {
		return err
	}
	if st != nil {
		defer st.close()
	}
	api, err := proxyapi.New(cfg)
	if err != nil {
		return err
	}
	if st != nil {
		if err := registerCensusMetrics(api.Registry(), st.store); err != nil {
			return err
		}
	}
	cert := &certLoader{certPath: o.tlsCert, keyPath: o.tlsKey}
	if err := cert.load(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	limits := fitOpenFileLimit(log, o.conns)
	ln = api.LimitListener(ln, limits)
	srv := proxyapi.NewHTTPServer(api.Handler(), proxyapi.TLSConfig(cert.get), log)
	log.Info("Proxy listening.", "addr", ln.Addr().String(), "resource", o.resource,
		"target_version", api.Policy().TargetVersion.String(), "census", cfg.Census != nil, "tokens_file", o.tokens,
		"max_connections", limits.Total, "max_connections_per_ip", limits.PerClient)
	run := &proxyRun{log: log, api: api, srv: srv, ln: ln, cert: cert, policyPath: o.resource, tokensPath: o.tokens}
	return run.serve(ctx, hup)
}

// proxyRun is a proxy serve that is ready to serve.
type proxyRun struct {
	log        *slog.Logger
	api        *proxyapi.Server
	srv        *http.Server
	ln         net.Listener
	cert       *certLoader
	policyPath string
	tokensPath string
}

// serve serves until ctx is done or serving fails, reloading the
// certificate and the policy on hup, then shuts down: requests in flight
// may finish within proxyShutdownTimeout, and the watcher and reloads get
// proxyStopWait to stop.
func (p *proxyRun) serve(ctx context.Context, hup <-chan os.Signal) error {
	log, api, srv, ln := p.log, p.api, p.srv, p.ln
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = api.Watch(ctx) // returns nil when ctx is done
	}()
	certs := startReloader(ctx, func() { p.cert.reload(log) })
	policy := startReloader(ctx, func() {
		// Reload and ReloadTokens log and count a refused file themselves.
		if err := api.Reload(); err == nil {
			log.Info("Policy checked on SIGHUP.", "path", p.policyPath)
		}
		if err := api.ReloadTokens(); err == nil && p.tokensPath != "" {
			log.Info("Enrollment tokens checked on SIGHUP.", "path", p.tokensPath)
		}
	})
	stopped := func() { waitStopped(log, proxyStopWait, watchDone, certs.done, policy.done) }

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("Notifying systemd failed.", "error", err.Error())
	} else if ok {
		log.Debug("Notified systemd: ready.")
	}
	if err := waitForStop(ctx, hup, serveErr, certs, policy); err != nil {
		cancel()
		stopped()
		return fmt.Errorf("serve HTTPS on %s: %w", ln.Addr(), err)
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	log.Info("Proxy shutting down; requests in flight may finish.", "timeout", proxyShutdownTimeout)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), proxyShutdownTimeout)
	defer cancelShutdown()
	err := srv.Shutdown(shutdownCtx)
	stopped()
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTPS on %s: %w", ln.Addr(), err)
	}
	if err != nil {
		return fmt.Errorf("shut down the proxy: %w", err)
	}
	log.Info("Proxy stopped.")
	return nil
}

// waitForStop returns nil when ctx is done, or the error serving stopped
// with. Meanwhile each SIGHUP asks for a certificate and a policy reload,
// apart, so a policy read stuck on a hung file cannot hold back a
// certificate renewal.
func waitForStop(ctx context.Context, hup <-chan os.Signal, serveErr <-chan error, certs, policy *reloader) error {
	for {
		select {
		case err := <-serveErr:
			return err
		case <-hup:
			certs.request()
			policy.request()
		case <-ctx.Done():
			return nil
		}
	}
}

// waitStopped waits up to limit for every channel in done to close, and
// logs when some did not: the process exits anyway.
func waitStopped(log *slog.Logger, limit time.Duration, done ...<-chan struct{}) {
	timeout := time.NewTimer(limit)
	defer timeout.Stop()
	for _, d := range done {
		select {
		case <-d:
		case <-timeout.C:
			log.Warn("The policy watcher or a reload did not stop; a read of the policy or certificate may be hung. Exiting anyway.",
				"waited", limit)
			return
		}
	}
}

// reloader runs a reload in its own goroutine, one at a time, until its
// context is done. A request made while a reload runs is kept (one,
// however many arrive) and served after it, so a reload stuck on a hung
// file blocks neither the caller nor other reloads, and requests do not
// pile up.
type reloader struct {
	req  chan struct{}
	done chan struct{} // closed when the goroutine has returned
}

func startReloader(ctx context.Context, reload func()) *reloader {
	r := &reloader{req: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.req:
				reload()
			}
		}
	}()
	return r
}

// request asks for a reload without waiting.
func (r *reloader) request() {
	select {
	case r.req <- struct{}{}:
	default: // one is already pending
	}
}

// certLoader holds the TLS certificate served, reloadable.
type certLoader struct {
	certPath, keyPath string
	cur               atomic.Pointer[tls.Certificate]
}

// load reads the certificate chain and key, both regular files, and
// serves them from the next handshake on.
func (c *certLoader) load() error {
	certPEM, err := capread.RegularFile(c.certPath, maxTLSFileSize)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	keyPEM, err := capread.RegularFile(c.keyPath, maxTLSFileSize)
	if err != nil {
		return fmt.Errorf("load TLS key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", c.certPath, c.keyPath, err)
	}
	c.cur.Store(&cert)
	return nil
}

// reload is load on SIGHUP: a failure is logged, the previous certificate
// keeps serving.
func (c *certLoader) reload(log *slog.Logger) {
	if err := c.load(); err != nil {
		log.Error("TLS certificate not reloaded; the previous one keeps serving.", "error", err.Error())
		return
	}
	log.Info("TLS certificate reloaded on SIGHUP.", "cert", c.certPath)
}

// get is tls.Config.GetCertificate.
func (c *certLoader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

// fitOpenFileLimit caps lim.Total at what the process's open-file limit
// holds besides fdReserve other files (past the limit, accept would fail
// for every client instead of the cap refusing a few), with a warning when
// that lowers a cap that was asked for.
func fitOpenFileLimit(log *slog.Logger, lim proxyapi.ConnLimits) proxyapi.ConnLimits {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > math.MaxInt32 {
		return lim
	}
	fit := int(max(int64(rl.Cur)-fdReserve, 1))
	if lim.Total == 0 {
		lim.Total = fit
	}
	if lim.Total > fit {
		log.Warn("Lowering --max-connections to fit the open-file limit; raise LimitNOFILE (ulimit -n) to allow more.",
			"max_connections", fit, "requested", lim.Total, "open_file_limit", rl.Cur)
		lim.Total = fit
	}
	return lim
}

// proxyCensus is the census database of proxy serve, with the goroutine
// that forgets hosts gone silent.
type proxyCensus struct {
	store *store.Store
	stop  func() // stops forgetting; runs before the database closes
	path  string
	log   *slog.Logger
}

// openProxyCensus opens --census-db and sets cfg's census fields; it
// returns nil without --census-db. A database that cannot be opened fails
// with --census-required; otherwise it is logged, and the proxy serves
// find and install.sh without census (503, and /readyz says not ready).
func openProxyCensus(ctx context.Context, log *slog.Logger, o proxyServeOptions, cfg *proxyapi.Config) (*proxyCensus, error) {
	if o.censusDB == "" {
		return nil, nil
	}
	st, err := store.Open(ctx, o.censusDB, store.Options{Logger: log})
	if err != nil {
		if o.censusRequired {
			return nil, fmt.Errorf("open census database (--census-required): %w", err)
		}
		log.Error("Census database could not be opened; serving find and install.sh without census, and /readyz reports not ready. Fix or move the file and restart the proxy.",
			"path", o.censusDB, "error", err.Error())
		cfg.CensusUnavailable = err
		return nil, nil
	}
	cfg.Census = st
	cfg.CensusHealth = st.WriteFailure
	c := &proxyCensus{store: st, stop: func() {}, path: o.censusDB, log: log}
	if o.forgetAfter > 0 {
		forgetCtx, stopForget := context.WithCancel(ctx)
		forgotten := make(chan struct{})
		go func() {
			defer close(forgotten)
			forgetStaleHosts(forgetCtx, log, st, o.forgetAfter)
		}()
		c.stop = func() { stopForget(); <-forgotten }
	}
	return c, nil
}

// close stops forgetting, then closes the database.
func (c *proxyCensus) close() {
	c.stop()
	if err := c.store.Close(); err != nil {
		c.log.Error("Closing the census database failed.", "path", c.path, "error", err.Error())
	}
}

// installKey returns the PEM key for install.sh: the file at path, or the
// first *.pem embedded in package keys.
func installKey(path string) ([]byte, error) {
	if path != "" {
		b, err := capread.File(path, maxInstallKeySize)
		if err != nil {
			return nil, fmt.Errorf("install key: %w", err)
		}
		return b, nil
	}
	names, err := fs.Glob(keys.FS, "*.pem")
	if err != nil || len(names) == 0 {
		return nil, errors.New("no embedded release key for install.sh; pass --install-key")
	}
	sort.Strings(names)
	b, err := fs.ReadFile(keys.FS, names[0])
	if err != nil {
		return nil, fmt.Errorf("read embedded key %s: %w", names[0], err)
	}
	return b, nil
}

// defaultCensusForgetAfter is how long proxy serve keeps a census host that
// has stopped reporting: long enough to list it as stale for weeks, not so
// long that an autoscaling fleet's database keeps every host it ever saw.
const defaultCensusForgetAfter = 90 * 24 * time.Hour

// censusForgetEvery is how often proxy serve deletes hosts not seen for
// --census-forget-after.
const censusForgetEvery = time.Hour

// forgetStaleHosts deletes the hosts not seen for after, at once and then
// every censusForgetEvery, until ctx is done. A failure is logged and tried
// again on the next tick.
func forgetStaleHosts(ctx context.Context, log *slog.Logger, st *store.Store, after time.Duration) {
	tick := time.NewTicker(censusForgetEvery)
	defer tick.Stop()
	for {
		_, err := st.Forget(ctx, time.Now().Add(-after))
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, store.ErrAllStale):
			log.Warn("No census host has reported within --census-forget-after; deleting none of them. Check this proxy's clock, or remove the database to start afresh.",
				"not_seen_for", after, "error", err.Error())
		default:
			log.Error("Deleting census hosts not seen recently failed; trying again later.",
				"not_seen_for", after, "retry_in", censusForgetEvery, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// registerCensusMetrics exports the census store's group-commit counters:
// reports per transaction is the batch size fsyncs are shared by.
func registerCensusMetrics(reg prometheus.Registerer, st *store.Store) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "teleport_update_census_transactions_total",
			Help: "Census database transactions committed by the batch writer.",
		}, func() float64 { return float64(st.Stats().Batches) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "teleport_update_census_reports_stored_total",
			Help: "Census reports committed by the batch writer.",
		}, func() float64 { return float64(st.Stats().Reports) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "teleport_update_census_write_errors_total",
			Help: "Census reports not stored because the database failed (disk full, I/O error, locked, corrupt).",
		}, func() float64 { return float64(st.Stats().WriteErrors) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register census metrics: %w", err)
		}
	}
	return nil
}
