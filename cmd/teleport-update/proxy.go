package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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

// HTTP server limits of proxy serve.
const (
	proxyReadHeaderTimeout = 10 * time.Second
	proxyReadTimeout       = 30 * time.Second
	proxyWriteTimeout      = 30 * time.Second
	proxyIdleTimeout       = 2 * time.Minute
	proxyMaxHeaderBytes    = 16 << 10
	// proxyShutdownTimeout is how long requests in flight may take to
	// finish after SIGTERM.
	proxyShutdownTimeout = 20 * time.Second
	// maxInstallKeySize caps the --install-key file.
	maxInstallKeySize = 64 << 10
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

The policy file (--resource, kind autoupdate_version) is re-read when it
changes and on SIGHUP; an invalid change is refused with a log line and the
last good policy keeps serving. SIGHUP also reloads the TLS certificate and
key. SIGTERM stops accepting connections and lets
requests in flight finish. Under systemd (Type=notify) READY=1 is sent once
the listener is up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.resource == "" || o.tlsCert == "" || o.tlsKey == "" {
				return usageError("proxy serve needs --resource, --tls-cert and --tls-key")
			}
			if o.forgetAfter < 0 {
				return usageError("--census-forget-after must not be negative, got %v", o.forgetAfter)
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
	return cmd
}

// runProxyServe serves until ctx is done, then shuts down gracefully.
func runProxyServe(ctx context.Context, log *slog.Logger, o proxyServeOptions) error {
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
	var st *store.Store // nil without --census-db
	if o.censusDB != "" {
		st, err = store.Open(ctx, o.censusDB, store.Options{Logger: log})
		if err != nil {
			return fmt.Errorf("open census database: %w", err)
		}
		defer func() {
			if err := st.Close(); err != nil {
				log.Error("Closing the census database failed.", "path", o.censusDB, "error", err.Error())
			}
		}()
		cfg.Census = st
		if o.forgetAfter > 0 {
			forgetCtx, stopForget := context.WithCancel(ctx)
			forgotten := make(chan struct{})
			go func() {
				defer close(forgotten)
				forgetStaleHosts(forgetCtx, log, st, o.forgetAfter)
			}()
			// Runs before the database is closed (defers run last first).
			defer func() { stopForget(); <-forgotten }()
		}
	}
	api, err := proxyapi.New(cfg)
	if err != nil {
		return err
	}
	if st != nil {
		if err := registerCensusMetrics(api.Registry(), st); err != nil {
			return err
		}
	}
	var cert atomic.Pointer[tls.Certificate]
	loadCert := func() error {
		c, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS certificate %s and key %s: %w", o.tlsCert, o.tlsKey, err)
		}
		cert.Store(&c)
		return nil
	}
	if err := loadCert(); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	srv := &http.Server{
		Handler: api.Handler(),
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return cert.Load(), nil
			},
		},
		ReadHeaderTimeout: proxyReadHeaderTimeout,
		ReadTimeout:       proxyReadTimeout,
		WriteTimeout:      proxyWriteTimeout,
		IdleTimeout:       proxyIdleTimeout,
		MaxHeaderBytes:    proxyMaxHeaderBytes,
		ErrorLog:          proxyapi.NewErrorLog(log),
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = api.Watch(ctx) // returns nil when ctx is done
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// Reload logs and counts a refused policy itself.
				if err := api.Reload(); err == nil {
					log.Info("Policy checked on SIGHUP.", "path", o.resource)
				}
				if err := api.ReloadTokens(); err == nil && o.tokens != "" {
					log.Info("Enrollment tokens checked on SIGHUP.", "path", o.tokens)
				}
				if err := loadCert(); err != nil {
					log.Error("TLS certificate not reloaded; the previous one keeps serving.", "error", err.Error())
				} else {
					log.Info("TLS certificate reloaded on SIGHUP.", "cert", o.tlsCert)
				}
			}
		}
	}()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	log.Info("Proxy listening.", "addr", ln.Addr().String(), "resource", o.resource,
		"target_version", api.Policy().TargetVersion.String(), "census", cfg.Census != nil, "tokens_file", o.tokens)
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("Notifying systemd failed.", "error", err.Error())
	} else if ok {
		log.Debug("Notified systemd: ready.")
	}

	select {
	case err := <-serveErr:
		cancel()
		<-watchDone
		return fmt.Errorf("serve HTTPS on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	log.Info("Proxy shutting down; requests in flight may finish.", "timeout", proxyShutdownTimeout)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), proxyShutdownTimeout)
	defer cancelShutdown()
	err = srv.Shutdown(shutdownCtx)
	<-watchDone
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTPS on %s: %w", ln.Addr(), err)
	}
	if err != nil {
		return fmt.Errorf("shut down the proxy: %w", err)
	}
	log.Info("Proxy stopped.")
	return nil
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
