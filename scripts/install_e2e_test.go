package scripts

// The install.sh story for real: a running proxy (package proxyapi) serves
// the script, a loopback HTTPS CDN serves a signed teleport-update release
// (the real binary) and a signed agent release, and the script piped into
// bash installs the agent into a temporary root.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// maxScriptBytes caps the install script the test reads from the proxy.
const maxScriptBytes = 1 << 20

var (
	updaterOnce sync.Once
	updaterDir  string
	updaterBin  string
	updaterTGZ  string // updaterBin packed as bin/teleport-update
	updaterErr  error
)

func TestMain(m *testing.M) {
	if os.Getenv(racerEnv) == "1" {
		os.Exit(runRacer())
	}
	code := m.Run()
	if updaterDir != "" {
		os.RemoveAll(updaterDir)
	}
	os.Exit(code)
}

// updaterTarball builds the real teleport-update once per test binary and
// returns it packed as a release tarball (bin/teleport-update).
func updaterTarball(t *testing.T) string {
	t.Helper()
	updaterOnce.Do(func() {
		updaterDir, updaterErr = os.MkdirTemp("", "install-sh-test-")
		if updaterErr != nil {
			return
		}
		updaterBin = filepath.Join(updaterDir, "teleport-update")
		cmd := exec.Command("go", "build", "-o", updaterBin, "github.com/gravitational/teleport-update/cmd/teleport-update")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			updaterErr = &buildError{err: err, out: string(out)}
			return
		}
		exe, err := os.ReadFile(updaterBin)
		if err != nil {
			updaterErr = err
			return
		}
		updaterTGZ = filepath.Join(updaterDir, "teleport-update.tar.gz")
		updaterErr = fixture.WriteTarball(updaterTGZ, map[string][]byte{"bin/teleport-update": exe})
	})
	if updaterErr != nil {
		t.Fatalf("build teleport-update: %v", updaterErr)
	}
	return updaterTGZ
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

const e2eVersion = "1.0.0"

// e2eEnv is a proxy and a CDN with signed updater and agent releases.
type e2eEnv struct {
	cdn     *fixture.CDN
	proxy   *httptest.Server
	signer  *signer
	caFile  string
	updater string // the CDN's updater tarball
}

// newE2EEnv starts the proxy and the CDN; withAgent also publishes a signed
// agent release (tests that stop before the install do not need one).
func newE2EEnv(t *testing.T, withAgent bool) *e2eEnv {
	t.Helper()
	arch := hostArch(t)
	tgz, err := os.ReadFile(updaterTarball(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &e2eEnv{cdn: newCDN(t), signer: newSigner(t)}
	e.updater = filepath.Join(e.cdn.Dir(), updaterTarballName(e2eVersion, arch))
	if err := os.WriteFile(e.updater, tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	e.signer.sign(t, e.updater)
	if withAgent {
		agent := releasetest.BuildAgent(t, t.TempDir(), e2eVersion, releasetest.ModeOK)
		agentOnCDN := filepath.Join(e.cdn.Dir(), filepath.Base(agent))
		if err := os.Rename(agent, agentOnCDN); err != nil {
			t.Fatal(err)
		}
		e.signer.sign(t, agentOnCDN)
	}

	policy := filepath.Join(t.TempDir(), "autoupdate_version.yaml")
	if err := os.WriteFile(policy, []byte(`kind: autoupdate_version
version: v1
spec:
  agents:
    target_version: `+e2eVersion+`
    mode: enabled
    schedule: immediate
    jitter_seconds: 0
    groups:
      - name: staging
        window: "0 2 * * *"
        duration: 1h
`), 0o644); err != nil {
		t.Fatal(err)
	}
	api, err := proxyapi.New(proxyapi.Config{
		PolicyFile:          policy,
		InstallScript:       InstallSH,
		InstallPublicKeyPEM: []byte(e.signer.publicPEM),
		BaseURL:             e.cdn.URL(),
	})
	if err != nil {
		t.Fatalf("start the proxy API: %v", err)
	}
	e.proxy = httptest.NewTLSServer(api.Handler())
	t.Cleanup(e.proxy.Close)
	e.caFile = writeCAFile(t, e.proxy, e.cdn.Server)
	return e
}

// fetchScript downloads install.sh from the proxy, as `curl -fsSL` would.
func (e *e2eEnv) fetchScript(t *testing.T) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, e.proxy.URL+proxyapi.InstallScriptPath+"?group=staging", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.proxy.Client().Do(req)
	if err != nil {
		t.Fatalf("fetch install.sh: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxScriptBytes+1))
	if err != nil {
		t.Fatalf("read install.sh: %v", err)
	}
	if resp.StatusCode != http.StatusOK || len(body) > maxScriptBytes {
		t.Fatalf("fetch install.sh: %s, %d bytes:\n%s", resp.Status, len(body), body)
	}
	return body
}

// newHostRoot returns a temporary root that trusts the test key.
func (e *e2eEnv) newHostRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := fixture.TrustKey(root, "test", []byte(e.signer.publicPEM)); err != nil {
		t.Fatal(err)
	}
	return root
}

// updateYAML is the part of update.yaml the test checks.
type updateYAML struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Proxy          string   `yaml:"proxy"`
		Group          string   `yaml:"group"`
		BaseURL        string   `yaml:"base_url"`
		InstallMethods []string `yaml:"install_methods"`
		Token          string   `yaml:"token"`
	} `yaml:"spec"`
	Status struct {
		Active string `yaml:"active"`
	} `yaml:"status"`
}

// checkInstalled checks the host layout (versions under /var/lib/teleport-update,
// links in /usr/local/bin, units, update.yaml) after a successful install
// of e2eVersion.
func (e *e2eEnv) checkInstalled(t *testing.T, root string) {
	t.Helper()
	versionDir := filepath.Join(root, "var", "lib", "teleport-update", "versions", e2eVersion)
	if _, err := os.Stat(filepath.Join(versionDir, ".verified")); err != nil {
		t.Errorf("version %s is not installed: %v", e2eVersion, err)
	}
	link := filepath.Join(root, "usr", "local", "bin", "teleport")
	target, err := filepath.EvalSymlinks(link)
	if err != nil {
		t.Errorf("resolve %s: %v", link, err)
	} else if want := filepath.Join(versionDir, "bin", "teleport"); target != want {
		if w, err := filepath.EvalSymlinks(want); err != nil || w != target {
			t.Errorf("%s points to %s, want %s", link, target, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "usr", "local", "bin", "teleport-update")); err != nil {
		t.Errorf("teleport-update was not copied into the root: %v", err)
	} else if fi.Mode()&0o111 == 0 {
		t.Errorf("installed teleport-update is not executable: %v", fi.Mode())
	}
	data, err := os.ReadFile(filepath.Join(root, "var", "lib", "teleport-update", "update.yaml"))
	if err != nil {
		t.Fatalf("read update.yaml: %v", err)
	}
	var cfg updateYAML
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("parse update.yaml: %v\n%s", err, data)
	}
	if cfg.Spec.Proxy != e.proxy.Listener.Addr().String() || cfg.Spec.Group != "staging" || cfg.Spec.BaseURL != e.cdn.URL() {
		t.Errorf("update.yaml spec = %+v, want proxy %s, group staging, base_url %s", cfg.Spec, e.proxy.Listener.Addr(), e.cdn.URL())
	}
	if !slices.Contains(cfg.Spec.InstallMethods, "node_script") {
		t.Errorf("update.yaml install_methods = %q, want node_script recorded", cfg.Spec.InstallMethods)
	}
	if cfg.Status.Active != e2eVersion {
		t.Errorf("update.yaml status.active = %q, want %s", cfg.Status.Active, e2eVersion)
	}
}

// checkNothingInstalled checks that the root holds only the pinned key.
func checkNothingInstalled(t *testing.T, root string) {
	t.Helper()
	for _, p := range []string{"var", "usr"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("a refused install left %s/ in the root", p)
		}
	}
}

// e2eArgs are passed through install.sh to `teleport-update install`.
var e2eArgs = []string{"--health-window", "1s"}

func TestInstallScriptFromProxy(t *testing.T) {
	t.Parallel()
	e := newE2EEnv(t, true)
	script := e.fetchScript(t)
	if bytes.Contains(script, []byte("{{")) {
		t.Fatalf("the proxy served an unrendered template:\n%s", script)
	}
	root := e.newHostRoot(t)

	// The token goes to the real teleport-update through install.sh's
	// root-only file, which teleport-update's checks accept.
	const token = "install-sh-e2e-token-0123456789abcdef"
	res := runScript(t, runOpts{script: script, caFile: e.caFile, root: root, args: append([]string{"--token", token}, e2eArgs...)})
	t.Logf("install.sh output:\n%s", res.stderr)
	if res.exitCode != 0 {
		t.Fatalf("install.sh exited %d", res.exitCode)
	}
	e.checkInstalled(t, root)
	if strings.Contains(res.stderr, token) {
		t.Errorf("install.sh printed the token:\n%s", res.stderr)
	}
	var cfg updateYAML
	data, _ := os.ReadFile(install.New(root).StatePath())
	if err := yaml.Unmarshal(data, &cfg); err != nil || cfg.Spec.Token != token {
		t.Errorf("update.yaml token = %q (%v), want the one given to install.sh", cfg.Spec.Token, err)
	}
	if len(res.tmpLeft) != 0 {
		t.Errorf("install.sh left %q in TMPDIR", res.tmpLeft)
	}

	// Running it again is harmless and leaves the same installation.
	res = runScript(t, runOpts{script: script, caFile: e.caFile, root: root, args: e2eArgs})
	if res.exitCode != 0 {
		t.Fatalf("second run of install.sh exited %d:\n%s", res.exitCode, res.stderr)
	}
	e.checkInstalled(t, root)
}

func TestInstallScriptFromProxyRefusesBadUpdater(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(t *testing.T, e *e2eEnv)
		want   string
	}{
		{
			name: "tampered updater tarball",
			tamper: func(t *testing.T, e *e2eEnv) {
				writeTarball(t, e.updater, map[string][]byte{"bin/teleport-update": []byte("#!/bin/sh\nexit 0\n")})
			},
			want: "SHA-256 mismatch",
		},
		{
			name: "signature by another key",
			tamper: func(t *testing.T, e *e2eEnv) {
				newSigner(t).sign(t, e.updater)
			},
			want: "signature check FAILED",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newE2EEnv(t, false)
			tt.tamper(t, e)
			root := e.newHostRoot(t)
			res := runScript(t, runOpts{script: e.fetchScript(t), caFile: e.caFile, root: root, args: e2eArgs})
			if res.exitCode == 0 {
				t.Fatalf("install.sh accepted a bad updater:\n%s", res.stderr)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, res.stderr)
			}
			checkNothingInstalled(t, root)
		})
	}
}
