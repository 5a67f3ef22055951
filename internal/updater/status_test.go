package updater

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater/download"
)

// failingTransport fails every request with err, the way a broken
// connection or a misbehaving HTTP proxy in between does.
type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// The proxy's failure text reaches status without the escape sequences it
// carried.
func TestStatusStripsProxyError(t *testing.T) {
	t.Parallel()
	_, u := installedHost(t, nil)
	u.HTTP = download.New(download.Options{HTTPClient: &http.Client{
		Transport: failingTransport{errors.New("proxy said: \x1b]0;owned\x07\x1b[31mbad gateway\x1b[0m \u009b2J ✓")},
	}})
	st, err := u.Status(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if st.ProxyError == "" {
		t.Fatal("status did not report the proxy failure")
	}
	if strings.ContainsFunc(st.ProxyError, func(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }) || strings.Contains(st.ProxyError, "owned") {
		t.Errorf("proxy_error keeps control characters: %q", st.ProxyError)
	}
	if !strings.Contains(st.ProxyError, "proxy said: bad gateway  ✓") {
		t.Errorf("proxy_error lost its text: %q", st.ProxyError)
	}
}
