package census

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/endpoint"
	"github.com/gravitational/teleport-update/internal/httpsig"
)

// Sending limits.
const (
	// SendTimeout is the whole budget of Send: connecting, TLS, upload and
	// answer. Reporting must never hold up an update.
	SendTimeout = 5 * time.Second
	// maxErrorAnswer caps how much of a refusal's body is quoted in the error.
	maxErrorAnswer = 512
)

// ErrRefused is wrapped when the proxy answered with a 4xx status: the
// report or the token was refused, and resending the same report will not
// help until something changes.
var ErrRefused = errors.New("census report refused by the proxy")

// Send POSTs r as JSON to https://proxyAddr + api.CensusPath with the
// enrollment token as a bearer token, signed by the host's key (package
// httpsig) at the time now returns, within SendTimeout (or ctx, if
// shorter). proxyAddr is HOST[:PORT] (endpoint.ValidateHostPort); a scheme,
// path or user info is refused. Redirects are not followed.
//
// Outcomes: nil when the proxy answered 2xx; an error wrapping ErrRefused for
// a 4xx answer; any other error (transport, timeout, 5xx) means try again on
// the next run. It never panics, whatever the proxy does.
func Send(ctx context.Context, client *http.Client, proxyAddr, token string, key ed25519.PrivateKey, r api.Report) error {
	u, err := censusURL(proxyAddr)
	if err != nil {
		return err
	}
	if client == nil {
		client = &http.Client{}
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("send census report: encode: %w", err)
	}
	if len(body) > api.MaxReportSize {
		return fmt.Errorf("send census report: report is %d bytes, more than %d", len(body), api.MaxReportSize)
	}
	ctx, cancel := context.WithTimeout(ctx, SendTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("send census report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := httpsig.Sign(req, body, key, time.Now()); err != nil {
		return fmt.Errorf("send census report: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := noRedirects(client).Do(req)
	if err != nil {
		return fmt.Errorf("send census report to %s: %w", u, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorAnswer))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return fmt.Errorf("send census report to %s: %w: %s: %q", u, ErrRefused, resp.Status, strings.TrimSpace(string(answer)))
	}
	return fmt.Errorf("send census report to %s: proxy answered %s: %q", u, resp.Status, strings.TrimSpace(string(answer)))
}

// censusURL builds the census endpoint URL from a proxy address, which
// must pass endpoint.ValidateHostPort like the agent's own --proxy.
func censusURL(proxyAddr string) (string, error) {
	if err := endpoint.ValidateHostPort(proxyAddr); err != nil {
		return "", fmt.Errorf("send census report: proxy address: %w", err)
	}
	u := &url.URL{Scheme: "https", Host: proxyAddr, Path: api.CensusPath}
	return u.String(), nil
}
