package proxyapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/gravitational/teleport-update/internal/capread"
)

// Limits of Serve.
const (
	// ShutdownTimeout is how long requests in flight may take to finish
	// once Serve's context is done.
	ShutdownTimeout = 20 * time.Second
	// stopWait bounds the wait for the policy watcher and the reloads after
	// the server stopped: a read stuck on a hung mount must not keep the
	// process from exiting.
	stopWait = 5 * time.Second
	// maxInstallKeySize caps ServeConfig.InstallKeyFile.
	maxInstallKeySize = 64 << 10
	// fdReserve is how many file descriptors the connection cap leaves for
	// the rest of the process: the census database, the policy file, logs.
	fdReserve = 64
)

// ServeConfig configures Serve.
type ServeConfig struct {
	// API configures the handler. Serve fills in its census fields
	// (Census, CensusUnavailable, CensusHealth) from CensusDB, and
	// InstallPublicKeyPEM from InstallKeyFile when that is set. Its Logger
	// receives Serve's own messages too.
	API Config
	// Listen is the TCP address to listen on; port 0 picks a free one.
	Listen string
	// AddrFile, when set, receives the address Serve listens on
	// (host:port and a newline) once it accepts connections. It is
	// replaced atomically, so a reader that sees the file sees all of it.
	AddrFile string
	// TLSCertFile and TLSKeyFile are the PEM certificate chain and private
	// key, regular files. SIGHUP reads them again; a pair that fails to
	// load leaves the previous one serving.
	TLSCertFile, TLSKeyFile string
	// InstallKeyFile, when set, is the PEM public key install.sh checks
	// signatures with, read once at start; it replaces
	// API.InstallPublicKeyPEM.
	InstallKeyFile string
	// CensusDB is the census database (census/store); empty disables
	// census intake.
	CensusDB string
	// CensusPasswordFile holds the password of a PostgreSQL CensusDB
	// (see store.Options.PasswordFile).
	CensusPasswordFile string
	// CensusRequired makes Serve fail when CensusDB cannot be opened.
	// Otherwise it serves find and install.sh without census, census
	// requests get 503 and ReadyPath reports the proxy not ready.
	CensusRequired bool
	// CensusForgetAfter deletes the census hosts not seen for this long,
	// at start and every CensusForgetEvery; 0 keeps them forever.
	CensusForgetAfter time.Duration
	// Conns caps the open connections. Conns.Total is lowered to what the
	// open-file limit holds (and set to that when 0).
	Conns ConnLimits
}

// Serve runs the proxy API over HTTPS until ctx is done, then shuts down
// gracefully: it stops accepting connections and lets requests in flight
// finish within ShutdownTimeout. Meanwhile it reloads the policy and tokens
// files when they change (Server.Watch), and on SIGHUP reloads them and the
// TLS certificate at once. Under systemd (Type=notify) it sends READY=1
// once listening and STOPPING=1 when shutting down.
//
// SIGHUP is taken over before anything that can take a while: its default
// action ends the process, and config management may send it while the
// proxy starts. One that arrives during start-up is acted on once serving
// begins.
//
// Outcomes: nil after a graceful shutdown; an error when the configuration
// is refused (see New), a file cannot be read, the census database cannot
// be opened with CensusRequired, the address cannot be listened on, or
// serving fails.
func Serve(ctx context.Context, cfg ServeConfig) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	log := cfg.API.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
		cfg.API.Logger = log
	}
	if cfg.InstallKeyFile != "" {
		key, err := capread.File(cfg.InstallKeyFile, maxInstallKeySize)
		if err != nil {
			return fmt.Errorf("install key: %w", err)
		}
		cfg.API.InstallPublicKeyPEM = key
	}
	census, err := openCensus(ctx, log, &cfg)
	if err != nil {
		return err
	}
	defer census.close()
	run, err := start(log, cfg, census)
	if err != nil {
		return err
	}
	return run.serve(ctx, hup)
}

// start builds the server and its listener, and announces the address.
func start(log *slog.Logger, cfg ServeConfig, census *censusDB) (*serveRun, error) {
	s, err := New(cfg.API)
	if err != nil {
		return nil, err
	}
	if err := census.registerMetrics(s.Registry()); err != nil {
		return nil, err
	}
	cert := &certLoader{certPath: cfg.TLSCertFile, keyPath: cfg.TLSKeyFile}
	if err := cert.load(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	limits := fitOpenFileLimit(log, cfg.Conns)
	ln = s.LimitListener(ln, limits)
	srv := NewHTTPServer(s.Handler(), TLSConfig(cert.get), log)
	log.Info("Proxy listening.", "addr", ln.Addr().String(), "resource", cfg.API.PolicyFile,
		"target_version", s.Policy().TargetVersion.String(), "census", census != nil, "tokens_file", cfg.API.TokensFile,
		"max_connections", limits.Total, "max_connections_per_ip", limits.PerClient)
	if cfg.AddrFile != "" {
		if err := writeAddrFile(cfg.AddrFile, ln.Addr().String()); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return &serveRun{log: log, api: s, srv: srv, ln: ln, cert: cert,
		policyPath: cfg.API.PolicyFile, tokensPath: cfg.API.TokensFile}, nil
}

// writeAddrFile writes addr and a newline to path through a temporary file
// renamed over it.
func writeAddrFile(path, addr string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write address file: %w", err)
	}
	_, err = f.WriteString(addr + "\n")
	err = errors.Join(err, f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write address file %s: %w", path, err)
	}
	return nil
}

// serveRun is a Serve that is ready to serve.
type serveRun struct {
	log        *slog.Logger
	api        *Server
	srv        *http.Server
	ln         net.Listener
	cert       *certLoader
	policyPath string
	tokensPath string
}

// serve serves until ctx is done or serving fails, reloading the
// certificate and the policy on hup, then shuts down: requests in flight
// may finish within ShutdownTimeout, and the watcher and reloads get
// stopWait to stop.
func (p *serveRun) serve(ctx context.Context, hup <-chan os.Signal) error {
	log := p.log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		_ = p.api.Watch(ctx) // returns nil when ctx is done
	}()
	rollDone := make(chan struct{})
	go func() {
		defer close(rollDone)
		p.api.RunRollout(ctx)
	}()
	certs := startReloader(ctx, func() { p.cert.reload(log) })
	policy := startReloader(ctx, p.reloadFiles)
	stopped := func() { waitStopped(log, stopWait, watchDone, rollDone, certs.done, policy.done) }

	serveErr := make(chan error, 1)
	go func() { serveErr <- p.srv.ServeTLS(p.ln, "", "") }()
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("Notifying systemd failed.", "error", err.Error())
	} else if ok {
		log.Debug("Notified systemd: ready.")
	}
	if err := waitForStop(ctx, hup, serveErr, certs, policy); err != nil {
		cancel()
		stopped()
		return fmt.Errorf("serve HTTPS on %s: %w", p.ln.Addr(), err)
	}
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	log.Info("Proxy shutting down; requests in flight may finish.", "timeout", ShutdownTimeout)
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancelShutdown()
	err := p.srv.Shutdown(shutdownCtx)
	stopped()
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTPS on %s: %w", p.ln.Addr(), err)
	}
	if err != nil {
		return fmt.Errorf("shut down the proxy: %w", err)
	}
	log.Info("Proxy stopped.")
	return nil
}

// reloadFiles is the SIGHUP reload of the policy and tokens files. Reload
// and ReloadTokens log and count a refused file themselves.
func (p *serveRun) reloadFiles() {
	if err := p.api.Reload(); err == nil {
		p.log.Info("Policy checked on SIGHUP.", "path", p.policyPath)
	}
	if err := p.api.ReloadTokens(); err == nil && p.tokensPath != "" {
		p.log.Info("Enrollment tokens checked on SIGHUP.", "path", p.tokensPath)
	}
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

// fitOpenFileLimit caps lim.Total at what the process's open-file limit
// holds besides fdReserve other files (past the limit, accept would fail
// for every client instead of the cap refusing a few), with a warning when
// that lowers a cap that was asked for.
func fitOpenFileLimit(log *slog.Logger, lim ConnLimits) ConnLimits {
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
