package updater

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gravitational/teleport-update/proxyapi"
	"github.com/gravitational/teleport-update/release"
	"github.com/gravitational/teleport-update/updater/download"
	"github.com/gravitational/teleport-update/updater/install"
)

// testEnv is a host root, a loopback HTTPS CDN serving signed releases, and
// a loopback HTTPS proxy whose find answer the test controls.
type testEnv struct {
	t    *testing.T
	root string
	key  *ecdsa.PrivateKey
	dir  string // where releases are built and signed

	cdn     *httptest.Server
	mu      sync.Mutex
	files   map[string][]byte
	cdnHits map[string]int

	proxy     *httptest.Server
	find      proxyapi.FindResponse
	findRaw   []byte // when set, served verbatim
	findCode  int
	findCalls int

	sleeps []time.Duration
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{t: t, root: t.TempDir(), dir: t.TempDir(), files: map[string][]byte{}, cdnHits: map[string]int{}}
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
	keysDir := filepath.Join(e.root, "etc/teleport-update/keys.d")
	if err := os.MkdirAll(keysDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"etc", "etc/teleport-update", "etc/teleport-update/keys.d"} {
		os.Chmod(filepath.Join(e.root, d), 0o755)
	}
	if err := os.WriteFile(filepath.Join(keysDir, "test.pub"), pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	e.cdn = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		e.mu.Lock()
		e.cdnHits[name]++
		data, ok := e.files[name]
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(e.cdn.Close)
	e.proxy = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.findCalls++
		if r.URL.Path != proxyapi.FindPath {
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
	e.find = proxyapi.FindResponse{AutoUpdate: proxyapi.AutoUpdateSettings{
		AgentVersion: version, AgentAutoUpdate: open, AgentUpdateJitterSeconds: jitterSeconds,
	}}
}

func (e *testEnv) hits(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cdnHits[name]
}

func (e *testEnv) totalCDNHits() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.cdnHits {
		n += c
	}
	return n
}

// agentScript is a fake teleport: `teleport version` prints the version;
// a broken one exits 1.
func agentScript(version string, broken bool) string {
	if broken {
		return "#!/bin/sh\necho 'teleport: cannot start' >&2\nexit 1\n"
	}
	return fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = version ]; then echo 'Teleport v%s git:test go1.26'; exit 0; fi\nexec sleep 3600\n", version)
}

// tarball builds a release tarball with bin/teleport and bin/tctl.
func tarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// publish signs a release of version and serves it from the CDN.
func (e *testEnv) publish(version string, broken bool) download.Artifact {
	e.t.Helper()
	a := e.artifact(version)
	data := tarball(e.t, map[string]string{
		"bin/teleport": agentScript(version, broken),
		"bin/tctl":     "#!/bin/sh\necho tctl\n",
	})
	path := filepath.Join(e.dir, a.TarballName())
	if err := os.WriteFile(path, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := release.Sign(e.key, path); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, name := range []string{a.TarballName(), a.ChecksumName(), a.BundleName(), a.SignatureName()} {
		b, err := os.ReadFile(filepath.Join(e.dir, name))
		if err != nil {
			e.t.Fatal(err)
		}
		e.files[name] = b
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
	e.mu.Lock()
	defer e.mu.Unlock()
	e.files[name] = f(bytes.Clone(e.files[name]))
}

func (e *testEnv) updater() *Updater {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return &Updater{
		Tree:         install.New(e.root),
		HTTP:         download.New(download.Options{HTTPClient: e.cdn.Client(), Logger: log}),
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
	cfg, err := u.Install(context.Background(), InstallRequest{
		Proxy: e.proxyAddr(), Group: "staging", BaseURL: e.cdn.URL, Version: version,
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
	matches, _ := filepath.Glob(filepath.Join(e.root, "var/lib/teleport/.staging/*"))
	return matches
}
