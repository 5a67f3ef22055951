package proxyapi

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP server limits of NewHTTPServer.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 30 * time.Second
	// IdleTimeout closes a keep-alive connection left unused this long.
	// Agents poll every few minutes, so an idle connection is never reused
	// by them; keeping it only holds a file descriptor.
	IdleTimeout    = 45 * time.Second
	MaxHeaderBytes = 16 << 10
)

// tls12CipherSuites are the TLS 1.2 suites the server accepts: ECDHE key
// exchange (forward secrecy) with an AEAD cipher. CBC suites, with their
// SHA-1 MACs and padding-oracle history, and static RSA key exchange are
// left out. TLS 1.3 suites are all AEAD and not configurable.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// TLSConfig returns the server's TLS settings: TLS 1.2 or newer, TLS 1.2
// limited to ECDHE with AES-GCM or ChaCha20-Poly1305. getCert supplies the
// certificate of each handshake, so the caller can reload it.
func TLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   tls12CipherSuites,
		GetCertificate: getCert,
	}
}

// NewHTTPServer returns an http.Server for h with tlsConf and the limits
// above; the server's own errors (failed handshakes, for instance) go to
// log at warn level.
func NewHTTPServer(h http.Handler, tlsConf *tls.Config, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          NewErrorLog(log),
	}
}

// ConnLimits bound the connections a listener holds open, so that one
// client cannot take every file descriptor of the process.
type ConnLimits struct {
	// Total caps the listener's open connections; 0 means no cap.
	Total int
	// PerClient caps the open connections of one client address (an IPv6
	// client counts by its /64, which one host usually holds whole); 0
	// means no cap.
	PerClient int
}

// Reasons a connection is refused, the label of
// teleport_update_connections_refused_total.
const (
	refusedTotal     = "total"
	refusedPerClient = "per_client"
)

// connMetrics count the connections of limited listeners.
type connMetrics struct {
	open    prometheus.Gauge
	refused *prometheus.CounterVec
}

func newConnMetrics(reg prometheus.Registerer) (*connMetrics, error) {
	m := &connMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "teleport_update_connections_open",
			Help: "Connections open on the limited listener.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teleport_update_connections_refused_total",
			Help: "Connections closed at accept because a limit was reached: total or per_client.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.open, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// LimitListener returns ln with lim applied. A connection over a cap is
// closed as soon as it is accepted, before any TLS handshake, and counted
// in teleport_update_connections_refused_total; the client retries later.
// Accept keeps going, so the clients under their caps are served.
func (s *Server) LimitListener(ln net.Listener, lim ConnLimits) net.Listener {
	return &limitListener{Listener: ln, lim: lim, m: s.conns, perClient: make(map[netip.Prefix]int)}
}

type limitListener struct {
	net.Listener
	lim ConnLimits
	m   *connMetrics

	mu        sync.Mutex
	total     int
	perClient map[netip.Prefix]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientPrefix(c.RemoteAddr())
		if reason := l.acquire(key); reason != "" {
			l.m.refused.WithLabelValues(reason).Inc()
			_ = c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: sync.OnceFunc(func() { l.release(key) })}, nil
	}
}

// acquire counts a connection of key, or returns the reason it is over a
// cap.
func (l *limitListener) acquire(key netip.Prefix) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lim.Total > 0 && l.total >= l.lim.Total {
		return refusedTotal
	}
	if l.lim.PerClient > 0 && l.perClient[key] >= l.lim.PerClient {
		return refusedPerClient
	}
	l.total++
	l.perClient[key]++
	l.m.open.Inc()
	return ""
}

func (l *limitListener) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perClient[key]--; l.perClient[key] <= 0 {
		delete(l.perClient, key)
	}
	l.m.open.Dec()
}

// limitedConn gives its slot back when closed (once, however often Close
// is called).
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// clientPrefix is the key a client address is counted under: an IPv4
// address by itself, an IPv6 address by its /64. An address that does not
// parse counts under the zero prefix.
func clientPrefix(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}
