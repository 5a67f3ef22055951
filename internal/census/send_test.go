package census

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/endpoint"
	"github.com/gravitational/teleport-update/internal/httpsig"
)

const testToken = "enrollment-token-0123456789abcdef0123456789"

// sendKey is the host key the tests sign with.
var sendKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func sendReport() api.Report {
	return api.Report{
		HostID:         strings.Repeat("d", 64),
		Version:        "16.4.6",
		Services:       []string{"node"},
		OS:             "linux",
		InstallMethods: []string{"teleport-update"},
		UpdateGroup:    "staging",
		UpdaterStatus:  api.StatusEnabled,
		ReportedAt:     testNow,
	}
}

func TestSend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr error // nil for success; errAny for any error
	}{
		{"accepted", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }, nil},
		{"refused report", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "invalid census report: os: want a GOOS-like word", http.StatusBadRequest)
		}, ErrRefused},
		{"refused token", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusForbidden) }, ErrRefused},
		{"server error", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "db down", http.StatusServiceUnavailable) }, errAny},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.com/", http.StatusTemporaryRedirect)
		}, errAny},
		{"endless answer", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			for range 1000 {
				w.Write([]byte(strings.Repeat("x", 1024)))
			}
		}, errAny},
		{"hijacked and dropped", func(w http.ResponseWriter, _ *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got api.Report
			var checked atomic.Bool
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				_, sigErr := httpsig.Verify(r.Method, r.URL.EscapedPath(), r.Header, body)
				if r.Method == http.MethodPost && r.URL.Path == api.CensusPath &&
					r.Header.Get("Authorization") == "Bearer "+testToken &&
					r.Header.Get("Content-Type") == "application/json" && sigErr == nil {
					if rep, err := api.DecodeReport(body); err == nil {
						got = rep
						checked.Store(true)
					}
				}
				tt.handler(w, r)
			}))
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "https://")
			err := Send(context.Background(), srv.Client(), addr, testToken, sendKey, sendReport())
			checkErr(t, err, tt.wantErr)
			if !checked.Load() {
				t.Fatalf("the proxy did not get a valid POST with the token, signed by the host key")
			}
			if want := sendReport(); !reflect.DeepEqual(got, want) {
				t.Errorf("proxy decoded %+v, want %+v", got, want)
			}
		})
	}
}

// errAny stands for "some error" in test tables.
var errAny = errors.New("any error")

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("err = %v, want nil", err)
	case want == errAny && err == nil:
		t.Fatalf("err = nil, want an error")
	case want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func TestSendFailures(t *testing.T) {
	t.Parallel()
	// A server that is down.
	down := httptest.NewTLSServer(http.NotFoundHandler())
	downAddr, downClient := strings.TrimPrefix(down.URL, "https://"), down.Client()
	down.Close()

	// A server that never answers: Send gives up when ctx (shorter than the
	// 5 s budget here, to keep the test fast) ends.
	stuck := make(chan struct{})
	hang := httptest.NewTLSServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stuck:
		}
	}))
	defer hang.Close()
	defer close(stuck)

	// A server whose certificate the client does not trust.
	untrusted := httptest.NewTLSServer(http.NotFoundHandler())
	untrusted.Config.ErrorLog = discardLog()
	defer untrusted.Close()

	tests := []struct {
		name   string
		client *http.Client
		addr   string
		ctx    func() (context.Context, context.CancelFunc)
	}{
		{"server down", downClient, downAddr, nil},
		{"server hangs", hang.Client(), strings.TrimPrefix(hang.URL, "https://"), func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}},
		{"untrusted certificate", &http.Client{}, strings.TrimPrefix(untrusted.URL, "https://"), nil},
		{"nil client, untrusted", nil, strings.TrimPrefix(untrusted.URL, "https://"), nil},
		{"plain http scheme", hang.Client(), "http://" + strings.TrimPrefix(hang.URL, "https://"), nil},
		{"address with path", hang.Client(), strings.TrimPrefix(hang.URL, "https://") + "/evil", nil},
		{"empty address", hang.Client(), "", nil},
		{"cancelled", hang.Client(), strings.TrimPrefix(hang.URL, "https://"), func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			err := Send(ctx, tt.client, tt.addr, testToken, sendKey, sendReport())
			if err == nil {
				t.Fatalf("Send succeeded, want an error")
			}
			if errors.Is(err, ErrRefused) {
				t.Errorf("Send = %v: a transport failure is not a refusal", err)
			}
		})
	}
}

func TestCensusURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr, want string
	}{
		{"proxy.example.com", "https://proxy.example.com/v1/webapi/census"},
		{"proxy.example.com:3080", "https://proxy.example.com:3080/v1/webapi/census"},
		{"[::1]:3080", "https://[::1]:3080/v1/webapi/census"},
		// The agent's --proxy rule: no scheme, no path, a valid port.
		{"https://proxy.example.com:443/", ""},
		{"https://proxy.example.com", ""},
		{"proxy.example.com/", ""},
		{"proxy.example.com:99999", ""},
		{"::1", ""},
		{"user@proxy.example.com", ""},
		{"ftp://proxy.example.com", ""},
		{"proxy.example.com?x=1", ""},
	}
	for _, tt := range tests {
		got, err := censusURL(tt.addr)
		if tt.want == "" {
			if !errors.Is(err, endpoint.ErrInvalidHostPort) {
				t.Errorf("censusURL(%q) = %q, %v; want endpoint.ErrInvalidHostPort", tt.addr, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("censusURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
}
