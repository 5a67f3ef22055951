package proxyapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/endpoint"
	"github.com/gravitational/teleport-update/internal/httpsig"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// writeFileAtomic replaces path the way careful editors and config
// management do: write a temporary file, then rename it over.
func writeFileAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// sundayInStaging is a Sunday 02:30 UTC: staging's window is open,
// production's is not.
var sundayInStaging = time.Date(2026, 11, 22, 2, 30, 0, 0, time.UTC)

type testEnv struct {
	s      *Server
	srv    *httptest.Server
	client *http.Client
	policy string
	clock  *fakeClock
	logs   *syncBuffer
}

// newEnv starts a Server over a real TLS test server. mod adjusts the
// config before New.
func newEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{policy: filepath.Join(dir, "autoupdate_version.yaml"), clock: newClock(sundayInStaging), logs: &syncBuffer{}}
	writeFileAtomic(t, e.policy, validPolicy)
	cfg := Config{
		PolicyFile: e.policy,
		Logger:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        e.clock.Now,
		Registry:   prometheus.NewRegistry(),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.s = s
	e.srv = httptest.NewTLSServer(s.Handler())
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()
	return e
}

func (e *testEnv) do(t testing.TB, method, path string, body io.Reader, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = io.ReadAll(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	// Census reports are signed by the test host's key at the server's
	// clock, unless the test set its own signature or asked for none.
	if method == http.MethodPost && path == api.CensusPath && req.Header.Get(httpsig.HeaderSignatureInput) == "" {
		if req.Header.Get(unsignedHeader) == "" {
			signReport(t, req, raw, testHostKey, e.s.now())
		}
		req.Header.Del(unsignedHeader)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func (e *testEnv) find(t testing.TB, query string) (int, api.FindResponse) {
	t.Helper()
	code, h, body := e.do(t, http.MethodGet, api.FindPath+query, nil, nil)
	var fr api.FindResponse
	if code == http.StatusOK {
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if err := json.Unmarshal(body, &fr); err != nil {
			t.Fatalf("decode find answer %q: %v", body, err)
		}
	}
	return code, fr
}

func TestFind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tests := []struct {
		name   string
		path   string
		code   int
		group  string
		auto   bool
		start  string
		errSub string
	}{
		{"staging open", api.FindPath + "?group=staging&host=h1", 200, "staging", true, "2026-11-22T02:00:00Z", ""},
		{"production closed", api.FindPath + "?group=production", 200, "production", false, "2026-11-24T04:00:00Z", ""},
		{"empty group gets last", api.FindPath, 200, "production", false, "2026-11-24T04:00:00Z", ""},
		{"empty value gets last", api.FindPath + "?group=", 200, "production", false, "2026-11-24T04:00:00Z", ""},
		{"unknown group gets last", api.FindPath + "?group=dev", 200, "production", false, "2026-11-24T04:00:00Z", ""},
		{"legacy path", LegacyFindPath + "?group=staging", 200, "staging", true, "2026-11-22T02:00:00Z", ""},
		{"other parameters ignored", api.FindPath + "?group=staging&foo=%zz", 200, "staging", true, "2026-11-22T02:00:00Z", ""},
		{"encoded slash", api.FindPath + "?group=a%2Fb", 400, "", false, "", "parameter group"},
		{"space", api.FindPath + "?group=a+b", 400, "", false, "", "parameter group"},
		{"bad escape", api.FindPath + "?group=%zz", 400, "", false, "", "URL-encoded"},
		{"too long", api.FindPath + "?group=" + strings.Repeat("g", MaxNameLen+1), 400, "", false, "", "longer than"},
		{"bad host", api.FindPath + "?host=%3Cscript%3E", 400, "", false, "", "parameter host"},
		{"duplicate group", api.FindPath + "?group=staging&group=production", 400, "", false, "", "more than once"},
		{"updater id", api.FindPath + "?group=staging&updater_id=0b9e0c1a-6f4d-4c8e-9a51-2f6b7c8d9e0f", 200, "staging", true, "2026-11-22T02:00:00Z", ""},
		{"bad updater id", api.FindPath + "?updater_id=%3Cscript%3E", 400, "", false, "", "parameter updater_id"},
		{"duplicate updater id", api.FindPath + "?updater_id=a&updater_id=b", 400, "", false, "", "more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, h, body := e.do(t, http.MethodGet, tt.path, nil, nil)
			if code != tt.code {
				t.Fatalf("GET %s = %d %s; want %d", tt.path, code, body, tt.code)
			}
			if code != 200 {
				var er ErrorResponse
				if err := json.Unmarshal(body, &er); err != nil || !strings.Contains(er.Error, tt.errSub) {
					t.Errorf("error body %s (%v); want JSON error containing %q", body, err, tt.errSub)
				}
				if h.Get("Content-Type") != "application/json" {
					t.Errorf("error Content-Type = %q", h.Get("Content-Type"))
				}
				return
			}
			var fr api.FindResponse
			if err := json.Unmarshal(body, &fr); err != nil {
				t.Fatal(err)
			}
			a := fr.AutoUpdate
			if a.AgentVersion != "16.4.6" || a.AgentAutoUpdate != tt.auto || a.AgentUpdateJitterSeconds != 60 || a.AgentUpdateGroup != tt.group {
				t.Errorf("answer %s; want group %s auto %v", body, tt.group, tt.auto)
			}
			if a.AgentUpdateWindow == nil || a.AgentUpdateWindow.Start.Format(time.RFC3339) != tt.start {
				t.Errorf("window in %s; want start %s", body, tt.start)
			}
		})
	}
	t.Run("method", func(t *testing.T) {
		t.Parallel()
		code, h, _ := e.do(t, http.MethodPost, api.FindPath, nil, nil)
		if code != http.StatusMethodNotAllowed || !strings.Contains(h.Get("Allow"), "GET") {
			t.Errorf("POST find = %d Allow %q; want 405 with Allow GET", code, h.Get("Allow"))
		}
	})
	t.Run("wire format", func(t *testing.T) {
		t.Parallel()
		_, _, body := e.do(t, http.MethodGet, api.FindPath+"?group=staging", nil, nil)
		want := `{"auto_update":{"agent_version":"16.4.6","agent_auto_update":true,"agent_update_jitter_seconds":60,"agent_update_window":{"start":"2026-11-22T02:00:00Z","end":"2026-11-22T03:00:00Z"},"agent_update_mode":"enabled","agent_update_group":"staging"},"edition":"community","fips":false}` + "\n"
		if string(body) != want {
			t.Errorf("body\n%s\nwant\n%s", body, want)
		}
	})
}

// TestFindFlavour: the find answer carries the edition and FIPS setting,
// from the server's config unless the resource sets them, where Teleport
// puts them (top level, next to auto_update). A reload changes them.
func TestFindFlavour(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edition string
		fips    bool
		add     string // added to the resource's spec.agents
		want    string
	}{
		{"default", "", false, "", `"edition":"community","fips":false}`},
		{"oss stays community", "oss", false, "", `"edition":"community","fips":false}`},
		{"ent flag", "ent", false, "", `"edition":"ent","fips":false}`},
		{"fips flag implies ent", "", true, "", `"edition":"ent","fips":true}`},
		{"resource wins over flags", "ent", true, "\n    edition: community", `"edition":"community","fips":false}`},
		{"resource fips", "", false, "\n    edition: ent\n    fips: true", `"edition":"ent","fips":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *Config) {
				c.Edition, c.FIPS = tt.edition, tt.fips
				writeFileAtomic(t, c.PolicyFile, strings.Replace(validPolicy, "mode: enabled", "mode: enabled"+tt.add, 1))
			})
			_, _, body := e.do(t, http.MethodGet, api.FindPath, nil, nil)
			if !strings.HasSuffix(string(body), tt.want+"\n") {
				t.Errorf("find answer %s; want it to end with %s", body, tt.want)
			}
		})
	}
	t.Run("reload", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		writeFileAtomic(t, e.policy, strings.Replace(validPolicy, "mode: enabled", "mode: enabled\n    fips: true", 1))
		if err := e.s.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, fr := e.find(t, ""); fr.Edition != api.EditionEnterprise || !fr.FIPS {
			t.Errorf("after reload: edition %q fips %t; want ent, true", fr.Edition, fr.FIPS)
		}
	})
}

// TestFindFollowsClock proves the per-group answer cache is recomputed when
// a window opens or closes.
func TestFindFollowsClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	steps := []struct {
		now  time.Time
		auto bool
	}{
		{time.Date(2026, 11, 22, 1, 59, 59, 0, time.UTC), false},
		{time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 11, 22, 2, 59, 59, 0, time.UTC), true},
		{time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC), false},
		{time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), false}, // clock stepped back
	}
	for _, st := range steps {
		e.clock.Set(st.now)
		for range 2 { // the second answer comes from the cache
			code, fr := e.find(t, "?group=staging")
			if code != 200 || fr.AutoUpdate.AgentAutoUpdate != st.auto {
				t.Fatalf("at %s: %d auto %v; want auto %v", st.now, code, fr.AutoUpdate.AgentAutoUpdate, st.auto)
			}
			if w := fr.AutoUpdate.AgentUpdateWindow; w == nil || (st.auto && !(w.Start.Compare(st.now) <= 0 && st.now.Before(w.End))) {
				t.Fatalf("at %s: window %+v does not contain now", st.now, w)
			}
		}
	}
}

func policyWith(version string) string {
	return strings.Replace(validPolicy, "16.4.6", version, 1)
}

// TestHotReloadUnderLoad rewrites the policy several times while clients
// hammer find: every request must succeed and every version must be seen.
func TestHotReloadUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.ReloadInterval = 5 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan error, 1)
	go func() { watchDone <- e.s.Watch(ctx) }()

	const workers = 8
	var (
		mu     sync.Mutex
		bad    []string
		seen   = map[string]int{}
		total  int
		stopCh = make(chan struct{})
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopCh:
					return
				default:
				}
				resp, err := e.client.Get(e.srv.URL + api.FindPath + "?group=staging")
				if err != nil {
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var fr api.FindResponse
				jerr := json.Unmarshal(body, &fr)
				mu.Lock()
				total++
				if resp.StatusCode != 200 || jerr != nil {
					bad = append(bad, fmt.Sprintf("%d %s", resp.StatusCode, body))
				} else {
					seen[fr.AutoUpdate.AgentVersion]++
				}
				mu.Unlock()
			}
		}()
	}

	versions := []string{"16.4.7", "16.4.8", "17.0.0", "17.0.1-rc.1", "17.0.1"}
	for i, v := range versions {
		if i == 2 {
			// An invalid edit in between is refused and changes nothing.
			writeFileAtomic(t, e.policy, policyWith("not-a-version"))
			deadline := time.Now().Add(10 * time.Second)
			for counterValue(t, e.s.metrics.rejects) < 1 {
				if time.Now().After(deadline) {
					t.Fatal("the invalid policy was not refused within 10s")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		if i%2 == 0 {
			writeFileAtomic(t, e.policy, policyWith(v))
		} else {
			// In-place rewrite: readers may catch it half written.
			if err := os.WriteFile(e.policy, []byte(policyWith(v)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := seen[v]
			mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("version %s not served within 10s of the change", v)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	close(stopCh)
	wg.Wait()
	cancel()
	if err := <-watchDone; err != nil {
		t.Errorf("Watch = %v; want nil after cancel", err)
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d requests failed during reloads, first: %s", len(bad), total, bad[0])
	}
	if got := counterValue(t, e.s.metrics.reloads); got < float64(len(versions)) {
		t.Errorf("reloads = %v; want >= %d", got, len(versions))
	}
	if got := counterValue(t, e.s.metrics.rejects); got < 1 {
		t.Errorf("rejects = %v; want the invalid edit counted", got)
	}
	t.Logf("%d requests, versions seen %v", total, seen)
}

func TestInvalidPolicyKeptOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	writeFileAtomic(t, e.policy, strings.Replace(validPolicy, `"0 4 * * Tue,Thu"`, `"0 4 * * Tue,Thr"`, 1))
	err := e.s.Reload()
	if !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("Reload(invalid) = %v; want ErrInvalidPolicy", err)
	}
	if got := counterValue(t, e.s.metrics.rejects); got != 1 {
		t.Errorf("rejects = %v; want 1", got)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "Policy file refused") || !strings.Contains(logs, "spec.agents.groups[1].window (line 14)") {
		t.Errorf("log does not name the problem:\n%s", logs)
	}
	// The same bad content again is not counted twice.
	if err := e.s.Reload(); err != nil {
		t.Errorf("Reload(same invalid) = %v; want nil (already reported)", err)
	}
	if got := counterValue(t, e.s.metrics.rejects); got != 1 {
		t.Errorf("rejects = %v after the same content; want 1", got)
	}
	if code, fr := e.find(t, "?group=staging"); code != 200 || fr.AutoUpdate.AgentVersion != "16.4.6" {
		t.Errorf("find after refused reload = %d %+v; want the last good policy", code, fr)
	}
	// A removed file is refused too.
	if err := os.Remove(e.policy); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Reload(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Reload(missing file) = %v; want fs.ErrNotExist", err)
	}
	writeFileAtomic(t, e.policy, policyWith("16.5.0"))
	if err := e.s.Reload(); err != nil {
		t.Fatalf("Reload(valid) = %v", err)
	}
	if code, fr := e.find(t, "?group=staging"); code != 200 || fr.AutoUpdate.AgentVersion != "16.5.0" {
		t.Errorf("find after reload = %d %+v; want 16.5.0", code, fr)
	}
	if got := counterValue(t, e.s.metrics.reloads); got != 1 {
		t.Errorf("reloads = %v; want 1", got)
	}
}

// TestWatchDebounce: Watch reports an invalid file only when it is seen
// twice, so a half-written file is not counted as a reject.
func TestWatchDebounce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	writeFileAtomic(t, e.policy, validPolicy[:40])
	if err := e.s.reload(true); err != nil {
		t.Fatalf("first look at a bad file = %v; want nil (debounced)", err)
	}
	writeFileAtomic(t, e.policy, policyWith("16.4.9"))
	if err := e.s.reload(true); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, e.s.metrics.rejects); got != 0 {
		t.Errorf("rejects = %v; want 0 for a file fixed before the second look", got)
	}
	writeFileAtomic(t, e.policy, validPolicy[:40])
	_ = e.s.reload(true)
	if err := e.s.reload(true); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("second look at a bad file = %v; want ErrInvalidPolicy", err)
	}
	if got := counterValue(t, e.s.metrics.rejects); got != 1 {
		t.Errorf("rejects = %v; want 1", got)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFileAtomic(t, good, validPolicy)
	bad := filepath.Join(dir, "bad.yaml")
	writeFileAtomic(t, bad, policyWith("v1"))
	tests := []struct {
		name string
		cfg  Config
		is   error
		sub  string
	}{
		{"no policy", Config{}, nil, "no policy file"},
		{"missing policy", Config{PolicyFile: filepath.Join(dir, "nope.yaml")}, os.ErrNotExist, ""},
		{"invalid policy", Config{PolicyFile: bad}, ErrInvalidPolicy, "target_version"},
		{"short token", Config{PolicyFile: good, Tokens: []Token{{Token: strings.Repeat("t", 31), Group: "staging"}}}, ErrInvalidTokens, "at least 32"},
		{"plain http base", Config{PolicyFile: good, BaseURL: "http://cdn.example.com"}, endpoint.ErrInsecureURL, "https"},
		{"base with dot segments", Config{PolicyFile: good, BaseURL: "https://cdn.example.com/a/../b"}, endpoint.ErrInvalidBaseURL, "dot segments"},
		{"bad public addr", Config{PolicyFile: good, PublicAddr: "proxy.example.com:99999"}, endpoint.ErrInvalidHostPort, "port"},
		{"public addr with a scheme", Config{PolicyFile: good, PublicAddr: "https://proxy.example.com"}, endpoint.ErrInvalidHostPort, "HOST[:PORT]"},
		{"bad template", Config{PolicyFile: good, InstallScript: []byte("{{.Nope"), InstallPublicKeyPEM: testKeyPEM(t)}, nil, "template"},
		{"no key for script", Config{PolicyFile: good, InstallScript: []byte("x")}, nil, "PUBLIC KEY"},
		{"unknown edition", Config{PolicyFile: good, Edition: "enterprise"}, api.ErrInvalidEdition, "enterprise"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.Registry = prometheus.NewRegistry()
			s, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New = %v; want an error", s)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("New = %v; want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.sub) {
				t.Errorf("New = %v; want it to mention %q", err, tt.sub)
			}
		})
	}
}

func testKeyPEM(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	code, _, body := e.do(t, http.MethodGet, HealthPath, nil, nil)
	if code != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("healthz = %d %s", code, body)
	}
	e.find(t, "?group=staging")
	e.find(t, "?group=%zz")
	code, _, _ = e.do(t, http.MethodGet, "/nope", nil, nil)
	if code != 404 {
		t.Errorf("GET /nope = %d; want 404", code)
	}
	code, _, body = e.do(t, http.MethodGet, MetricsPath, nil, nil)
	if code != 200 {
		t.Fatalf("metrics = %d", code)
	}
	for _, want := range []string{
		`teleport_update_http_requests_total{code="200",route="find"} 1`,
		`teleport_update_http_requests_total{code="400",route="find"} 1`,
		`teleport_update_http_requests_total{code="404",route="other"} 1`,
		`teleport_update_http_request_duration_seconds_count{route="find"} 2`,
		`teleport_update_target_version_info{group="staging",version="16.4.6"} 1`,
		`teleport_update_target_version_info{group="production",version="16.4.6"} 1`,
		`teleport_update_policy_rejects_total 0`,
		`teleport_update_policy_reloads_total 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Access log: one line per request with the constant keys.
	logs := e.logs.String()
	for _, want := range []string{`msg="Request served." method=GET route=find code=200`, `route=find code=400`, "remote=127.0.0.1:"} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %q:\n%s", want, logs)
		}
	}
	// After a reload the version gauge follows.
	writeFileAtomic(t, e.policy, policyWith("16.5.0"))
	if err := e.s.Reload(); err != nil {
		t.Fatal(err)
	}
	_, _, body = e.do(t, http.MethodGet, MetricsPath, nil, nil)
	if !strings.Contains(string(body), `teleport_update_target_version_info{group="staging",version="16.5.0"} 1`) || strings.Contains(string(body), `version="16.4.6"`) {
		t.Errorf("target version gauge not updated:\n%s", body)
	}
}

const testScript = `#!/bin/bash
PROXY_ADDR='{{.ProxyAddr}}'
GROUP='{{.Group}}'
VERSION='{{.Version}}'
BASE_URL='{{.BaseURL}}'
PUBLIC_KEY='{{.PublicKey}}'
`

func TestInstallScript(t *testing.T) {
	t.Parallel()
	key := testKeyPEM(t)
	e := newEnv(t, func(c *Config) {
		c.InstallScript = []byte(testScript)
		c.InstallPublicKeyPEM = key
		c.PublicAddr = "proxy.example.com:443"
		c.BaseURL = "https://mirror.example.com/teleport"
	})
	code, h, body := e.do(t, http.MethodGet, InstallScriptPath+"?group=staging", nil, nil)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/x-shellscript") {
		t.Fatalf("install.sh = %d %s %s", code, h.Get("Content-Type"), body)
	}
	want := "#!/bin/bash\nPROXY_ADDR='proxy.example.com:443'\nGROUP='staging'\nVERSION='16.4.6'\nBASE_URL='https://mirror.example.com/teleport'\nPUBLIC_KEY='" + strings.TrimSpace(string(key)) + "'\n"
	if string(body) != want {
		t.Errorf("install.sh =\n%s\nwant\n%s", body, want)
	}
	code, _, body = e.do(t, http.MethodGet, InstallScriptPath+"?group=stagin", nil, nil)
	if code != 400 || !strings.Contains(string(body), "stagin is not in the policy; known groups: staging, production") {
		t.Errorf("install.sh unknown group = %d %s; want 400 naming the groups", code, body)
	}
	code, _, body = e.do(t, http.MethodGet, InstallScriptPath, nil, nil)
	if code != 200 || !strings.Contains(string(body), "GROUP=''") {
		t.Errorf("install.sh without group = %d %s", code, body)
	}
	code, _, _ = e.do(t, http.MethodGet, InstallScriptPath+"?group=%27", nil, nil)
	if code != 400 {
		t.Errorf("install.sh with a quote in the group = %d; want 400", code)
	}

	// Without a public address the request's Host is used; without a
	// script the endpoint is 404.
	e2 := newEnv(t, func(c *Config) { c.InstallScript = []byte(testScript); c.InstallPublicKeyPEM = key })
	_, _, body = e2.do(t, http.MethodGet, InstallScriptPath, nil, nil)
	if host := strings.TrimPrefix(e2.srv.URL, "https://"); !strings.Contains(string(body), "PROXY_ADDR='"+host+"'") {
		t.Errorf("install.sh without PublicAddr:\n%s\nwant PROXY_ADDR=%s", body, host)
	}
	e3 := newEnv(t, nil)
	if code, _, _ := e3.do(t, http.MethodGet, InstallScriptPath, nil, nil); code != 404 {
		t.Errorf("install.sh without a script = %d; want 404", code)
	}
}

func TestQuoteInside(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"plain", "it's", "''", "a'b'c", "$(id)`id`\"\\\n"} {
		script := "v='" + quoteInside(s) + "'; printf %s \"$v\""
		out, err := runBash(t, script)
		if err != nil {
			t.Skipf("bash not available: %v", err)
		}
		if out != s {
			t.Errorf("quoted %q came back as %q", s, out)
		}
	}
}

// validReport is a census report body the handler accepts.
const validReport = `{"host_id":"` + "3094a6150cd1bbb551bd449dde8ae6e744f7962dab97c7a484a906b9f284d5ba" +
	`","version":"16.4.6","updater_status":"enabled","reported_at":"2026-11-22T02:00:00Z"}`

// fakeCensus records what the server passes on.
type fakeCensus struct {
	mu      sync.Mutex
	groups  []string
	reports []api.Report
	err     error
	stale   time.Duration
}

func (f *fakeCensus) Ingest(_ context.Context, group string, r api.Report, _ api.Identity, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.groups = append(f.groups, group)
	f.reports = append(f.reports, r)
	return nil
}

func (f *fakeCensus) Summary(_ context.Context, now time.Time, staleAfter time.Duration) (*api.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stale = staleAfter
	s := api.NewSummary(now, staleAfter)
	s.TotalHosts = len(f.groups)
	return s, nil
}

var (
	stagingToken = "staging-token-0123456789abcdefghijkl"
	remoteToken  = "remote-only-token-0123456789abcdefgh"
	goneToken    = "removed-group-token-0123456789abcdef"
	adminToken   = "admin-token-0123456789abcdefghijklmn"
)

func testTokens() []Token {
	return []Token{
		{Token: stagingToken, Group: "staging", CIDRs: []string{"127.0.0.0/8", "::1"}},
		{Token: remoteToken, Group: "staging", CIDRs: []string{"10.0.0.0/8"}},
		{Token: goneToken, Group: "canary"},
		{Token: adminToken, Admin: true},
	}
}

// unsignedHeader in a test request's header asks testEnv.do not to sign
// the census report.
const unsignedHeader = "X-Test-Unsigned"

// testHostKey is the key test census reports are signed with.
var testHostKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// signReport signs a census report request as an agent does.
func signReport(t testing.TB, req *http.Request, body []byte, key ed25519.PrivateKey, at time.Time) {
	t.Helper()
	if err := httpsig.Sign(req, body, key, at); err != nil {
		t.Fatal(err)
	}
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func TestCensusIntake(t *testing.T) {
	t.Parallel()
	fc := &fakeCensus{}
	e := newEnv(t, func(c *Config) { c.Tokens = testTokens(); c.Census = fc })
	report := validReport
	tests := []struct {
		name   string
		method string
		header http.Header
		body   string
		code   int
		errSub string
	}{
		{"no token", http.MethodPost, nil, report, 401, "enrollment token is required"},
		{"not bearer", http.MethodPost, http.Header{"Authorization": {"Basic " + stagingToken}}, report, 401, "Bearer"},
		{"wrong token", http.MethodPost, bearer(stagingToken + "x"), report, 401, "not valid"},
		{"right token, wrong CIDR", http.MethodPost, bearer(remoteToken), report, 403, "not allowed from this address"},
		{"group not in policy", http.MethodPost, bearer(goneToken), report, 403, "token's group canary is not in the policy"},
		{"admin token has no group", http.MethodPost, bearer(adminToken), report, 403, "no group"},
		{"too large", http.MethodPost, bearer(stagingToken), strings.Repeat(" ", api.MaxReportSize+1), 413, "larger than"},
		{"unknown field", http.MethodPost, bearer(stagingToken), `{"hostname":"db-1"}`, 400, "unknown field"},
		{"not json", http.MethodPost, bearer(stagingToken), `hello`, 400, "invalid census report"},
		{"invalid value", http.MethodPost, bearer(stagingToken), strings.Replace(report, `"enabled"`, `"on"`, 1), 400, "updater_status"},
		{"wrong method", http.MethodGet, bearer(stagingToken), "", 405, "not allowed"},
		{"accepted", http.MethodPost, bearer(stagingToken), report, 202, ""},
		{"bearer is case-insensitive", http.MethodPost, http.Header{"Authorization": {"bearer " + stagingToken}}, report, 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: the failures share one client address and
			// would trip the rate limiter.
			code, h, body := e.do(t, tt.method, api.CensusPath, strings.NewReader(tt.body), tt.header)
			if code != tt.code {
				t.Fatalf("%s census = %d %s; want %d", tt.method, code, body, tt.code)
			}
			if tt.errSub != "" && !strings.Contains(string(body), tt.errSub) {
				t.Errorf("body %s; want it to contain %q", body, tt.errSub)
			}
			if code == 401 && h.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	fc.mu.Lock()
	want, err := api.DecodeReport([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	if len(fc.groups) != 2 || fc.groups[0] != "staging" || !reflect.DeepEqual(fc.reports[0], want) {
		t.Errorf("backend got %v %+v; want two staging reports %+v", fc.groups, fc.reports, want)
	}
	fc.mu.Unlock()

	fc.mu.Lock()
	fc.err = fmt.Errorf("%w: host_id: missing", api.ErrInvalidReport)
	fc.mu.Unlock()
	if code, _, body := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(report), bearer(stagingToken)); code != 400 || !strings.Contains(string(body), "host_id: missing") {
		t.Errorf("report the backend refuses = %d %s; want 400", code, body)
	}
	fc.mu.Lock()
	fc.err = errors.New("disk full")
	fc.mu.Unlock()
	if code, _, _ := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(report), bearer(stagingToken)); code != 503 {
		t.Errorf("backend failure = %d; want 503", code)
	}
}

func TestCensusSummary(t *testing.T) {
	t.Parallel()
	fc := &fakeCensus{}
	e := newEnv(t, func(c *Config) { c.Tokens = testTokens(); c.Census = fc })
	if code, _, _ := e.do(t, http.MethodGet, api.CensusSummaryPath, nil, bearer(stagingToken)); code != 403 {
		t.Errorf("summary with an agent token = %d; want 403", code)
	}
	code, _, body := e.do(t, http.MethodGet, api.CensusSummaryPath+"?stale_after=2h", nil, bearer(adminToken))
	var sum api.Summary
	if code != 200 || json.Unmarshal(body, &sum) != nil || sum.StaleAfter != "2h0m0s" {
		t.Errorf("summary = %d %s; want 200 with stale_after 2h", code, body)
	}
	if code, _, _ := e.do(t, http.MethodGet, api.CensusSummaryPath+"?stale_after=-1h", nil, bearer(adminToken)); code != 400 {
		t.Errorf("summary with negative stale_after = %d; want 400", code)
	}
	e2 := newEnv(t, func(c *Config) { c.Tokens = testTokens() })
	if code, _, _ := e2.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bearer(stagingToken)); code != 404 {
		t.Errorf("census disabled = %d; want 404", code)
	}
}

// TestAuthRateLimit floods bad tokens from 127.0.0.1: the flood is
// answered 429, while a valid token from the same address is accepted.
func TestAuthRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Tokens = testTokens(); c.Census = &fakeCensus{} })
	bad := bearer("wrong-token-wrong-token-wrong-token")
	for i := range failBurst {
		if code, _, _ := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bad); code != 401 {
			t.Fatalf("failure %d = %d; want 401", i, code)
		}
	}
	for i := range 3 * failBurst {
		code, h, _ := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bad)
		if code != 429 || h.Get("Retry-After") == "" {
			t.Fatalf("bad token %d after %d failures = %d Retry-After %q; want 429 with Retry-After", i, failBurst, code, h.Get("Retry-After"))
		}
		if code, _, body := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bearer(stagingToken)); code != 202 {
			t.Fatalf("valid token from the flooding address = %d %s; want 202", code, body)
		}
	}
	e.clock.Add(failRefill)
	if code, _, _ := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bad); code != 401 {
		t.Errorf("bad token after the refill = %d; want 401", code)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", MinTokenLen)
	tests := []struct {
		name string
		doc  string
		sub  string
	}{
		{"short", "tokens:\n  - token: short\n    group: staging\n", "at least 32"},
		{"unknown field", "tokens:\n  - token: " + long + "\n    grup: staging\n", "field grup not found in tokens[]"},
		{"no group", "tokens:\n  - token: " + long + "\n", "group is required"},
		{"bad group", "tokens:\n  - token: " + long + "\n    group: a/b\n", "characters outside"},
		{"duplicate", "tokens:\n  - token: " + long + "\n    group: a\n  - token: " + long + "\n    group: b\n", "tokens[1] repeats tokens[0]"},
		{"bad cidr", "tokens:\n  - token: " + long + "\n    group: a\n    cidrs: [10.0.0.0/33]\n", "cidrs[0]"},
		{"space in token", "tokens:\n  - token: \"" + long + " x\"\n    group: a\n", "printable"},
		{"empty", "", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseTokens([]byte(tt.doc))
			if !errors.Is(err, ErrInvalidTokens) || !strings.Contains(err.Error(), tt.sub) {
				t.Fatalf("ParseTokens = %v; want ErrInvalidTokens mentioning %q", err, tt.sub)
			}
			if strings.Contains(err.Error(), long) {
				t.Errorf("error %v reveals the token", err)
			}
		})
	}
	toks, err := ParseTokens([]byte("tokens:\n  - token: " + long + "\n    group: staging\n    cidrs: [10.0.0.0/8, 192.0.2.7]\n    admin: true\n"))
	if err != nil || len(toks) != 1 || !toks[0].Admin || len(toks[0].CIDRs) != 2 {
		t.Fatalf("ParseTokens = %+v, %v", toks, err)
	}
}

// TestLookupToken checks that every configured token is found wherever it
// sits, that only hashes are kept, and that near misses fail.
func TestLookupToken(t *testing.T) {
	t.Parallel()
	var toks []Token
	for i := range 5 {
		toks = append(toks, Token{Token: fmt.Sprintf("token-%d-%s", i, strings.Repeat("s", 40)), Group: fmt.Sprintf("g%d", i)})
	}
	entries, err := compileTokens(toks)
	if err != nil {
		t.Fatal(err)
	}
	if dump := fmt.Sprintf("%+v", entries); strings.Contains(dump, "token-0-") {
		t.Fatalf("entries keep the secret: %s", dump)
	}
	for i, tok := range toks {
		e, ok := lookupToken(entries, tok.Token)
		if !ok || e.group != tok.Group {
			t.Errorf("lookup token %d = %v, %v; want group %s", i, e.group, ok, tok.Group)
		}
		if _, ok := lookupToken(entries, tok.Token[:len(tok.Token)-1]); ok {
			t.Errorf("a prefix of token %d matched", i)
		}
	}
	if _, ok := lookupToken(nil, toks[0].Token); ok {
		t.Error("lookup in no tokens matched")
	}
}

func TestFailLimiterBounded(t *testing.T) {
	t.Parallel()
	l := newFailLimiter()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxLimitedAddrs + 100 {
		a := netipFrom(uint32(i))
		l.fail(a, now)
	}
	if n := l.len(); n > maxLimitedAddrs {
		t.Errorf("limiter tracks %d addresses; want at most %d", n, maxLimitedAddrs)
	}
}
