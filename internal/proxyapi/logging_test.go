package proxyapi

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// infoLines returns the lines of logs at info level or above.
func infoLines(logs string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if l != "" && !strings.Contains(l, "level=DEBUG") {
			out = append(out, l)
		}
	}
	return out
}

// TestClientErrorsLogBounded sends hundreds of bad requests, as one
// unauthenticated client can: unknown tokens (401, then 429), unknown
// paths (404), bad queries (400), wrong methods (405) and successes. At
// info level they leave a bounded number of lines.
func TestClientErrorsLogBounded(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	e := newEnv(t, func(c *Config) {
		c.Tokens = testTokens()
		c.Census = &fakeCensus{}
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	const n = 100
	bad := bearer("wrong-token-wrong-token-wrong-token")
	for range n {
		e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bad)
		e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), nil)
		e.do(t, http.MethodGet, "/wp-login.php", nil, nil)
		e.do(t, http.MethodGet, api.FindPath+"?group="+strings.Repeat("x", maxQueryLen), nil, nil)
		e.do(t, http.MethodDelete, api.CensusPath, nil, bad)
		e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bearer(stagingToken))
		e.find(t, "?group=staging")
	}
	lines := infoLines(logs.String())
	if len(lines) > clientLogBurst {
		t.Errorf("%d requests, %d of them bad, logged %d lines at info; want at most %d:\n%s",
			7*n, 5*n, len(lines), clientLogBurst, strings.Join(lines[:min(len(lines), 20)], "\n"))
	}
	if !strings.Contains(logs.String(), "Too many failed authentication attempts") {
		t.Errorf("the blocked client is not logged:\n%s", logs.String())
	}
	// What needs an operator stays at info: a valid token used from the
	// wrong network (once the client's failures are forgiven).
	e.clock.Add(failBurst * failRefill)
	e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bearer(remoteToken))
	if !strings.Contains(logs.String(), "code=403") {
		t.Errorf("a 403 is not logged at info:\n%s", logs.String())
	}
}

func TestAccessLevel(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]slog.Level{
		200: slog.LevelDebug, 202: slog.LevelDebug, 304: slog.LevelDebug,
		400: slog.LevelDebug, 401: slog.LevelDebug, 404: slog.LevelDebug,
		405: slog.LevelDebug, 413: slog.LevelDebug, 429: slog.LevelDebug,
		403: slog.LevelInfo, 500: slog.LevelInfo, 503: slog.LevelInfo,
	} {
		if got := accessLevel(code); got != want {
			t.Errorf("accessLevel(%d) = %v; want %v", code, got, want)
		}
	}
}

// TestTLSHandshakeErrorsBounded makes 50 failed TLS handshakes against a
// real TLS server whose ErrorLog is NewErrorLog's: a bounded number of
// lines, while the server's own errors still get through.
func TestTLSHandshakeErrorsBounded(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	clock := newClock(sundayInStaging)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = newErrorLog(logger, clock.Now)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	const n = 50
	for range n {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// Not a TLS record, nor HTTP (which net/http answers without a log).
		if _, err := conn.Write([]byte{0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		// The server logs the failure before it closes the connection.
		_, _ = io.Copy(io.Discard, conn)
		conn.Close()
	}
	lines := infoLines(logs.String())
	if len(lines) != clientLogBurst || !strings.Contains(lines[0], "TLS handshake error") {
		t.Fatalf("%d failed handshakes logged %d lines; want %d:\n%s", n, len(lines), clientLogBurst, strings.Join(lines[:min(len(lines), 20)], "\n"))
	}
	srv.Config.ErrorLog.Print("http: Accept error: accept tcp: too many open files; retrying in 1s")
	if !strings.Contains(logs.String(), `level=WARN msg="http: Accept error`) {
		t.Errorf("the server's own error was not logged after a handshake flood:\n%s", logs.String())
	}
	clock.Add(time.Minute)
	srv.Config.ErrorLog.Print("http: TLS handshake error from 192.0.2.1:1234: EOF")
	if !strings.Contains(logs.String(), "similar_lines_dropped=40") {
		t.Errorf("the first line after the pause does not count the dropped ones:\n%s", logs.String())
	}
}
