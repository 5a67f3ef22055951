package updater

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// testEnv is a host root, a loopback HTTPS CDN serving signed releases, and
// a loopback HTTPS proxy whose find answer the test controls.
type testEnv struct {
	t    *testing.T
	root string
	key  *ecdsa.PrivateKey
	dir  string // where releases are built and signed

	cdn *fixture.CDN
	mu  sync.Mutex

	proxy     *httptest.Server
	find      api.FindResponse
	findRaw   []byte // when set, served verbatim
	findCode  int
	findCalls int
	findQuery url.Values // the last find request's query

	sleeps []time.Duration
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{t: t, root: t.TempDir(), dir: t.TempDir(), cdn: fixture.NewCDN()}
	t.Cleanup(e.cdn.Close)
	keyDir := t.TempDir()
	priv, pub, err := release.GenerateKey(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	if e.key, err = release.LoadPrivateKey(priv); err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture.TrustKey(e.root, "test", pubPEM); err != nil {
		t.Fatal(err)
	}
	e.proxy = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.findCalls++
		e.findQuery = r.URL.Query()
		if r.URL.Path != api.FindPath {
			http.NotFound(w, r)
			return
		}
		if e.findCode != 0 && e.findCode != http.StatusOK {
			http.Error(w, "unavailable", e.findCode)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if e.findRaw != nil {
			w.Write(e.findRaw)
			return
		}
		json.NewEncoder(w).Encode(e.find)
	}))
	t.Cleanup(e.proxy.Close)
	return e
}

// proxyAddr is HOST:PORT of the test proxy.
func (e *testEnv) proxyAddr() string {
	u, _ := url.Parse(e.proxy.URL)
	return u.Host
}

// setTarget makes the proxy answer version with the window open or closed.
func (e *testEnv) setTarget(version string, open bool, jitterSeconds int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.findRaw = nil
	e.findCode = 0
	e.find = api.FindResponse{AutoUpdate: api.AutoUpdateSettings{
		AgentVersion: version, AgentAutoUpdate: open, AgentUpdateJitterSeconds: jitterSeconds,
	}}
}

// publish signs a release of version and serves it from the CDN.
func (e *testEnv) publish(version string, broken bool) download.Artifact {
	e.t.Helper()
	a := e.artifact(version)
	data, err := releasetest.ScriptRelease(version, broken)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.cdn.Publish(e.key, e.dir, a.TarballName(), data); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *testEnv) artifact(version string) download.Artifact {
	v, err := download.ParseVersion(version)
	if err != nil {
		e.t.Fatal(err)
	}
	return download.Artifact{Product: "teleport", Version: v, OS: runtime.GOOS, Arch: runtime.GOARCH}
}

// tamper replaces a served file's bytes.
func (e *testEnv) tamper(name string, f func([]byte) []byte) {
	e.cdn.Put(name, f(e.cdn.Get(name)))
}

func (e *testEnv) updater() *Updater {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return &Updater{
		Tree:         install.New(e.root),
		HTTP:         download.New(download.Options{HTTPClient: e.cdn.Server.Client(), Logger: log}),
		Log:          log,
		EmbeddedKeys: fstest.MapFS{},
		Limits:       install.DefaultLimits,
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.sleeps = append(e.sleeps, d)
			return nil
		},
		LockWait: time.Second,
	}
}

func (e *testEnv) config() *Config {
	e.t.Helper()
	cfg, exists, err := LoadConfig(install.New(e.root).StatePath())
	if err != nil || !exists {
		e.t.Fatalf("update.yaml: exists=%v err=%v", exists, err)
	}
	return cfg
}

func (e *testEnv) install(u *Updater, version string) *Config {
	e.t.Helper()
	e.mu.Lock()
	unset := e.find.AutoUpdate.AgentVersion == "" && e.findRaw == nil && e.findCode == 0
	e.mu.Unlock()
	if unset {
		// install --version asks the proxy which build to install.
		e.setTarget(version, false, 0)
	}
	cfg, err := u.Install(context.Background(), InstallRequest{
		Proxy: e.proxyAddr(), Group: "staging", BaseURL: e.cdn.Server.URL, Version: version,
	})
	if err != nil {
		e.t.Fatalf("install: %v", err)
	}
	return cfg
}

// linked returns the version /usr/local/bin/teleport points into.
func (e *testEnv) linked() string {
	e.t.Helper()
	v, err := install.New(e.root).LinkedVersion()
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// stagingLeft lists anything left under the staging area.
func (e *testEnv) stagingLeft() []string {
	matches, _ := filepath.Glob(filepath.Join(e.root, "var/lib/teleport-update/.staging/*"))
	return matches
}

// pub is a version to publish on the test CDN; broken ones fail their
// health check.
type pub struct {
	version string
	broken  bool
}

// installedHost returns a test host with 1.0.0 installed and releases
// published besides. before, unless nil, runs ahead of the install.
func installedHost(t *testing.T, before func(*testEnv, *Updater), releases ...pub) (*testEnv, *Updater) {
	t.Helper()
	e := newTestEnv(t)
	u := e.updater()
	if before != nil {
		before(e, u)
	}
	e.publish("1.0.0", false)
	for _, r := range releases {
		e.publish(r.version, r.broken)
	}
	e.install(u, "1.0.0")
	return e, u
}
