package proxyapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// dialFrom opens a TLS connection to addr from the local address from and
// completes the handshake.
func dialFrom(from, addr string, conf *tls.Config) (*tls.Conn, error) {
	d := &tls.Dialer{
		NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second},
		Config:    conf,
	}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// TestLimitListenerPerClient holds every connection one address may have,
// and checks that its next one is closed before the TLS handshake while
// another address still gets find answered.
func TestLimitListenerPerClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	srv := httptest.NewUnstartedServer(e.s.Handler())
	srv.Listener = e.s.LimitListener(srv.Listener, ConnLimits{Total: 100, PerClient: 2})
	srv.StartTLS()
	t.Cleanup(srv.Close)
	conf := srv.Client().Transport.(*http.Transport).TLSClientConfig
	addr := srv.Listener.Addr().String()
	for i := range 2 {
		c, err := dialFrom("127.0.0.1", addr, conf)
		if err != nil {
			t.Fatalf("connection %d from 127.0.0.1: %v", i+1, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	if c, err := dialFrom("127.0.0.1", addr, conf); err == nil {
		c.Close()
		t.Fatal("a third connection from 127.0.0.1 completed its handshake; want it closed at the per-address cap")
	}
	other := &http.Client{Transport: &http.Transport{
		TLSClientConfig: conf,
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}
	t.Cleanup(other.CloseIdleConnections)
	resp, err := other.Get(srv.URL + api.FindPath + "?group=staging")
	if err != nil {
		t.Fatalf("find from 127.0.0.2 while 127.0.0.1 is at its cap: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("find from 127.0.0.2 = %d %s; want 200", resp.StatusCode, body)
	}
	if got := counterValue(t, e.s.conns.refused.WithLabelValues(refusedPerClient)); got != 1 {
		t.Errorf("refused per_client = %v; want 1", got)
	}
}

// TestLimitListenerTotal: past the total cap a connection is closed at
// accept, and closing a held connection gives its slot back.
func TestLimitListenerTotal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := e.s.LimitListener(ln, ConnLimits{Total: 1})
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// Guards the test against hanging on a connection that was
		// wrongly accepted; a refused one reads EOF at once.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	held := <-accepted
	over := dial()
	if err := readClosed(over); err != nil {
		t.Fatalf("connection over the total cap: %v", err)
	}
	if got := counterValue(t, e.s.conns.refused.WithLabelValues(refusedTotal)); got != 1 {
		t.Errorf("refused total = %v; want 1", got)
	}
	held.Close()
	held.Close() // a second Close must not give back a second slot
	dial()
	(<-accepted).Close()
	dial()
	second := <-accepted
	if err := readClosed(dial()); err != nil {
		t.Fatalf("a connection while one is held (a slot counted back twice?): %v", err)
	}
	second.Close()
}

// readClosed returns nil when the server closed c: the read ends at once
// with EOF or a reset, not by its deadline.
func readClosed(c net.Conn) error {
	n, err := c.Read(make([]byte, 1))
	switch {
	case err == nil:
		return fmt.Errorf("read %d bytes; want the connection closed", n)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("the connection stayed open; want it closed at accept")
	}
	return nil
}

func TestClientPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:5000", "127.0.0.1/32"},
		{"[::ffff:10.0.0.1]:443", "10.0.0.1/32"},
		{"[2001:db8:1:2:aaaa::1]:1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::9]:2", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:3", "fe80::/64"},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		if got := clientPrefix(net.TCPAddrFromAddrPort(ap)); got.String() != tc.want {
			t.Errorf("clientPrefix(%s) = %s; want %s", tc.addr, got, tc.want)
		}
	}
}

// TestNewHTTPServer: idle keep-alive connections are closed within a
// minute.
func TestNewHTTPServer(t *testing.T) {
	t.Parallel()
	srv := NewHTTPServer(http.NotFoundHandler(), TLSConfig(nil), slog.New(slog.DiscardHandler))
	if srv.IdleTimeout < 30*time.Second || srv.IdleTimeout > time.Minute {
		t.Errorf("IdleTimeout = %s; want 30s to 60s", srv.IdleTimeout)
	}
}

// TestTLSConfigSuites shakes hands with TLS 1.2 clients that offer one
// kind of cipher suite each: only ECDHE with AES-GCM or ChaCha20 is
// accepted; CBC suites with SHA-1 or SHA-256 MACs and RSA key exchange are
// refused. TLS 1.1 is refused.
func TestTLSConfigSuites(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = TLSConfig(nil) // httptest adds its certificate
	srv.StartTLS()
	t.Cleanup(srv.Close)
	base := srv.Client().Transport.(*http.Transport).TLSClientConfig
	var offers [][]uint16
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		// httptest's certificate is RSA: ECDSA suites could not work.
		if slices.Contains(cs.SupportedVersions, tls.VersionTLS12) && !strings.Contains(cs.Name, "_ECDSA_") {
			offers = append(offers, []uint16{cs.ID})
		}
	}
	for _, offer := range offers {
		name := tls.CipherSuiteName(offer[0])
		want := strings.HasPrefix(name, "TLS_ECDHE_") && (strings.Contains(name, "_GCM_") || strings.Contains(name, "_CHACHA20_"))
		conf := base.Clone()
		conf.MaxVersion = tls.VersionTLS12
		conf.CipherSuites = offer
		c, err := tls.Dial("tcp", srv.Listener.Addr().String(), conf)
		if err == nil {
			c.Close()
		}
		if got := err == nil; got != want {
			t.Errorf("TLS 1.2 handshake offering only %s succeeded = %v; want %v (%v)", name, got, want, err)
		}
	}
	conf := base.Clone()
	conf.MaxVersion = tls.VersionTLS11
	if c, err := tls.Dial("tcp", srv.Listener.Addr().String(), conf); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}
