package proxyapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// fakeWriteHealth is a census writer's health as the store reports it.
type fakeWriteHealth struct {
	mu    sync.Mutex
	since time.Time
	err   error
}

func (f *fakeWriteHealth) get() (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.since, f.err
}

func (f *fakeWriteHealth) set(since time.Time, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.since, f.err = since, err
}

// ready GETs ReadyPath and decodes the answer.
func (e *testEnv) ready(t *testing.T) (int, ReadyResponse) {
	t.Helper()
	code, _, body := e.do(t, http.MethodGet, ReadyPath, nil, nil)
	var rr ReadyResponse
	if err := json.Unmarshal(body, &rr); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return code, rr
}

// TestReadyCensusWrites: /readyz turns 503 once census writes have failed
// for CensusFailingFor without a success, and back to 200 when they
// succeed; /healthz stays 200 throughout.
func TestReadyCensusWrites(t *testing.T) {
	t.Parallel()
	health := &fakeWriteHealth{}
	e := newEnv(t, func(c *Config) {
		c.Census = &fakeCensus{}
		c.CensusHealth = health.get
	})
	if code, rr := e.ready(t); code != http.StatusOK || rr.Status != "ready" || len(rr.Reasons) != 0 {
		t.Fatalf("readyz while writes succeed = %d %+v; want 200 ready", code, rr)
	}
	diskFull := errors.New("database or disk is full (13)")
	health.set(e.clock.Now().Add(-CensusFailingFor+time.Second), diskFull)
	if code, rr := e.ready(t); code != http.StatusOK {
		t.Errorf("readyz after writes failed for less than %s = %d %+v; want 200", CensusFailingFor, code, rr)
	}
	health.set(e.clock.Now().Add(-CensusFailingFor-2*time.Second), diskFull)
	code, rr := e.ready(t)
	if code != http.StatusServiceUnavailable || rr.Status != "not ready" || len(rr.Reasons) != 1 ||
		!strings.Contains(rr.Reasons[0], "census: writes") || !strings.Contains(rr.Reasons[0], "12s") {
		t.Errorf("readyz after writes failed for 12s = %d %+v; want 503 naming the census writes", code, rr)
	}
	if len(rr.Reasons) > 0 && strings.Contains(rr.Reasons[0], "disk is full") {
		t.Errorf("readyz reason %q carries the raw error; the log has it", rr.Reasons[0])
	}
	if code, _, body := e.do(t, http.MethodGet, HealthPath, nil, nil); code != http.StatusOK {
		t.Errorf("healthz while census fails = %d %s; want 200 (liveness)", code, body)
	}
	health.set(time.Time{}, nil)
	if code, rr := e.ready(t); code != http.StatusOK {
		t.Errorf("readyz after a successful write = %d %+v; want 200", code, rr)
	}
}

// TestReadyCensusUnavailable: a census database that could not be opened
// leaves find and install.sh served, census answered 503, and /readyz 503.
func TestReadyCensusUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Tokens = testTokens()
		c.CensusUnavailable = errors.New("file is not a database (26)")
		c.InstallScript = []byte("#!/bin/sh\necho '{{.Version}}'\n")
		c.InstallPublicKeyPEM = testKeyPEM(t)
	})
	code, rr := e.ready(t)
	if code != http.StatusServiceUnavailable || len(rr.Reasons) != 1 || !strings.Contains(rr.Reasons[0], "census database could not be opened") {
		t.Errorf("readyz = %d %+v; want 503 naming the census database", code, rr)
	}
	if code, fr := e.find(t, "?group=staging"); code != http.StatusOK || fr.AutoUpdate.AgentVersion != "16.4.6" {
		t.Errorf("find = %d %+v; want it served", code, fr)
	}
	if code, _, body := e.do(t, http.MethodGet, InstallScriptPath, nil, nil); code != http.StatusOK {
		t.Errorf("install.sh = %d %s; want it served", code, body)
	}
	for _, path := range []string{api.CensusPath, api.CensusSummaryPath} {
		method := http.MethodPost
		if path == api.CensusSummaryPath {
			method = http.MethodGet
		}
		if code, _, body := e.do(t, method, path, strings.NewReader(validReport), bearer(stagingToken)); code != http.StatusServiceUnavailable {
			t.Errorf("%s %s = %d %s; want 503", method, path, code, body)
		}
	}
}

// TestReadyPolicy: a refused policy file is a warning (the last good
// policy serves); no policy at all makes the server not ready.
func TestReadyPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	writeFileAtomic(t, e.policy, "kind: autoupdate_version\n")
	if err := e.s.Reload(); err == nil {
		t.Fatal("Reload(invalid) = nil")
	}
	code, rr := e.ready(t)
	if code != http.StatusOK || len(rr.Warnings) != 1 || !strings.Contains(rr.Warnings[0], "refused") {
		t.Errorf("readyz with a refused policy file = %d %+v; want 200 with a warning", code, rr)
	}
	writeFileAtomic(t, e.policy, validPolicy)
	if err := e.s.Reload(); err != nil {
		t.Fatal(err)
	}
	if code, rr := e.ready(t); code != http.StatusOK || len(rr.Warnings) != 0 {
		t.Errorf("readyz after a good reload = %d %+v; want 200 without warnings", code, rr)
	}
	e.s.state.Store(nil)
	if code, rr := e.ready(t); code != http.StatusServiceUnavailable || len(rr.Reasons) != 1 || !strings.Contains(rr.Reasons[0], "no valid policy") {
		t.Errorf("readyz without a policy = %d %+v; want 503 naming the policy", code, rr)
	}
}
