package proxyapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// waitingCensus holds every report until the request's context ends, as a
// slow database does, and returns the context's error.
type waitingCensus struct{ entered chan struct{} }

func (w *waitingCensus) Ingest(ctx context.Context, _ string, _ api.Report, _ api.Identity, _ time.Time) error {
	w.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (w *waitingCensus) Summary(context.Context, time.Time, time.Duration) (*api.Summary, error) {
	return nil, context.Canceled
}

// TestCensusClientGone checks a report whose client went away before the
// backend answered is logged as of unknown outcome, not as not stored.
func TestCensusClientGone(t *testing.T) {
	t.Parallel()
	backend := &waitingCensus{entered: make(chan struct{}, 1)}
	e := newEnv(t, func(c *Config) { c.Tokens = testTokens(); c.Census = backend })
	served := make(chan struct{}, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.s.Handler().ServeHTTP(w, r)
		served <- struct{}{}
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+api.CensusPath, strings.NewReader(validReport))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+stagingToken)
	signReport(t, req, []byte(validReport), testHostKey, e.s.now())
	done := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-backend.entered
	cancel()
	if err := <-done; err == nil {
		// The client's cancellation closes the connection, which ends the
		// request's context on the server: the backend returns and the
		// handler answers. Once in a few thousand runs (under load, in CI)
		// that answer reached the client before its own cancellation did.
		// What this test is about is the server's side: the log below.
		t.Log("the cancelled request got the server's answer before its cancellation took effect")
	}
	<-served
	logs := e.logs.String()
	if !strings.Contains(logs, "Census report outcome unknown: the client went away") || strings.Contains(logs, "not stored") {
		t.Errorf("a report whose client went away is not logged as of unknown outcome:\n%s", logs)
	}
}
