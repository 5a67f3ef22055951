package systemd

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/nspawn"
	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/releasetest"
)

// Bounds of the waits in the suite. They only cap how long a broken run
// takes to fail; a passing run never waits for them.
const (
	commandTimeout = 3 * time.Minute // one teleport-update command inside
	timerTimeout   = 2 * time.Minute // the timer firing and its update finishing
	pollEvery      = 250 * time.Millisecond
)

// Paths inside the containers.
const (
	caBundlePath  = "/etc/ssl/certs/ca-certificates.crt"
	testKeyPath   = "/etc/teleport-update/keys.d/test.pub"
	cliPath       = "/usr/local/bin/teleport-update"
	versionsDir   = "/var/lib/teleport-update/versions"
	agentUnit     = "teleport.service"
	updaterUnit   = "teleport-update.service"
	updaterTimer  = "teleport-update.timer"
	agentLinkPath = "/usr/local/bin/teleport"
)

// host is a booted container prepared to run teleport-update.
type host struct {
	t *testing.T
	c *nspawn.Container
}

// bootHost boots a container and registers a cleanup that prints the
// journal of the agent and updater units when the test failed.
func bootHost(t *testing.T, prepare func(root string) error) *host {
	t.Helper()
	c := nspawn.Boot(t.Context(), t, nspawn.Options{Prepare: prepare})
	h := &host{t: t, c: c}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Journal of %s (teleport.service, teleport-update.service):\n%s",
				c.Name(), c.Journal(agentUnit, updaterUnit))
		}
	})
	return h
}

// writeFile writes data to path inside the container (through its root on
// the host), creating parent directories 0755; everything is owned by root.
func writeFile(root, path string, data []byte, mode os.FileMode) error {
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return err
	}
	return os.Chmod(p, mode) // WriteFile's mode is subject to the umask
}

// appendFile appends data to path inside the container.
func appendFile(root, path string, data []byte) error {
	f, err := os.OpenFile(filepath.Join(root, path), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// run runs a command inside the container and returns its output; err is
// non-nil when it exits non-zero.
func (h *host) run(args ...string) (stdout, stderr string, err error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), commandTimeout)
	defer cancel()
	o, e, err := h.c.Exec(ctx, args...)
	return string(o), string(e), err
}

// mustRun runs a command inside the container and fails the test if it
// exits non-zero.
func (h *host) mustRun(args ...string) string {
	h.t.Helper()
	o, e, err := h.run(args...)
	if err != nil {
		h.t.Fatalf("%s in %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), h.c.Name(), err, o, e)
	}
	return o
}

// show returns unit properties from systemctl show.
func (h *host) show(unit string, props ...string) map[string]string {
	h.t.Helper()
	out := h.mustRun("systemctl", "show", unit, "--property="+strings.Join(props, ","))
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// status is the part of `teleport-update status --json` the suite checks.
type status struct {
	Proxy      string   `json:"proxy"`
	BaseURL    string   `json:"base_url"`
	Active     string   `json:"active"`
	Backup     string   `json:"backup"`
	Skip       []string `json:"skip"`
	LastUpdate *struct {
		Target  string `json:"target"`
		Success bool   `json:"success"`
		Error   string `json:"error"`
	} `json:"last_update"`
}

func (h *host) status() status {
	h.t.Helper()
	out := h.mustRun(cliPath, "status", "--json", "--offline")
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		h.t.Fatalf("Parsing status --json: %v\n%s", err, out)
	}
	return st
}

// runningVersion checks that the agent unit is active and returns the
// version of the binary its main process runs, read from the process's
// executable path (/var/lib/teleport-update/versions/<ver>/bin/teleport).
func (h *host) runningVersion() string {
	h.t.Helper()
	p := h.show(agentUnit, "ActiveState", "SubState", "MainPID")
	if p["ActiveState"] != "active" || p["SubState"] != "running" || p["MainPID"] == "0" {
		h.t.Fatalf("%s is %s/%s (MainPID %s), want active/running", agentUnit, p["ActiveState"], p["SubState"], p["MainPID"])
	}
	exe := strings.TrimSpace(h.mustRun("readlink", "/proc/"+p["MainPID"]+"/exe"))
	rest, ok := strings.CutPrefix(exe, versionsDir+"/")
	ver, tail, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || tail != "bin/teleport" {
		h.t.Fatalf("%s runs %s, not a versioned teleport binary under %s", agentUnit, exe, versionsDir)
	}
	return ver
}

// versions lists the version directories installed.
func (h *host) versions() []string {
	h.t.Helper()
	return strings.Fields(h.mustRun("ls", "-1", versionsDir))
}

// Releases on the shared CDN.
const (
	v1 = "1.0.0" // good
	v2 = "2.0.0" // good
	v3 = "3.0.0" // exits 1 at start
	v4 = "4.0.0" // crashes after ~5 s
)

// cdn is an HTTPS server with signed test releases.
type cdn struct {
	srv    *httptest.Server
	pubPEM []byte // the signing key, for keys.d
	caPEM  []byte // the servers' certificate, for the CA bundle
}

var (
	cdnOnce sync.Once
	cdnVal  *cdn
	cdnErr  error
)

// sharedCDN builds, signs and serves v1..v4 once per run.
func sharedCDN(t *testing.T) *cdn {
	t.Helper()
	cdnOnce.Do(func() { cdnVal, cdnErr = newCDN(context.Background()) })
	if cdnErr != nil {
		t.Fatalf("Preparing the test CDN: %v", cdnErr)
	}
	return cdnVal
}

// extraReleases are test releases beyond v1..v4, built, signed and put on
// the shared CDN once per run by the tests that need them.
type extraReleases struct {
	once sync.Once
	err  error
}

// publish runs build once per run, after the shared CDN is up, and fails t
// if it failed; what names the releases in the failure.
func (r *extraReleases) publish(t *testing.T, what string, build func(context.Context) error) {
	t.Helper()
	sharedCDN(t)
	r.once.Do(func() { r.err = build(context.Background()) })
	if r.err != nil {
		t.Fatalf("Publishing %s: %v", what, r.err)
	}
}

// putOnCDN moves the built tarball onto the shared CDN and signs it with
// the suite's key.
func putOnCDN(tarball string) error {
	key, err := release.LoadPrivateKey(filepath.Join(buildDir, "key", "release.key"))
	if err != nil {
		return err
	}
	onCDN := filepath.Join(buildDir, "cdn", filepath.Base(tarball))
	if err := os.Rename(tarball, onCDN); err != nil {
		return err
	}
	return release.Sign(key, onCDN)
}

func newCDN(ctx context.Context) (*cdn, error) {
	dir := filepath.Join(buildDir, "cdn")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	privPath, pubPath, err := release.GenerateKey(filepath.Join(buildDir, "key"))
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	key, err := release.LoadPrivateKey(privPath)
	if err != nil {
		return nil, fmt.Errorf("loading signing key: %w", err)
	}
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		return nil, err
	}
	agents := []releasetest.Agent{
		{Version: v1, Mode: releasetest.ModeOK},
		{Version: v2, Mode: releasetest.ModeOK},
		{Version: v3, Mode: releasetest.ModeExit},
		{Version: v4, Mode: releasetest.ModeCrash, CrashAfter: 5 * time.Second},
	}
	errs := make([]error, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() {
			p, err := a.Build(ctx, dir)
			if err == nil {
				err = release.Sign(key, p)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("building test releases: %w", err)
	}
	srv := httptest.NewTLSServer(http.FileServer(http.Dir(dir)))
	return &cdn{srv: srv, pubPEM: pub, caPEM: certPEM(srv.Certificate())}, nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// proxy is a proxyapi server on 127.0.0.1 whose target a test changes.
type proxy struct {
	t      *testing.T
	api    *proxyapi.Server
	srv    *httptest.Server
	policy string
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, policy: filepath.Join(t.TempDir(), "autoupdate_version.yaml")}
	p.writePolicy(target)
	api, err := proxyapi.New(proxyapi.Config{
		PolicyFile: p.policy,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("Starting the test proxy: %v", err)
	}
	p.api = api
	p.srv = httptest.NewTLSServer(api.Handler())
	t.Cleanup(p.srv.Close)
	return p
}

// addr is the proxy's HOST:PORT for --proxy.
func (p *proxy) addr() string { return strings.TrimPrefix(p.srv.URL, "https://") }

// setTarget points every group at version, updating at once, no jitter.
func (p *proxy) setTarget(version string) {
	p.t.Helper()
	p.writePolicy(version)
	if err := p.api.Reload(); err != nil {
		p.t.Fatalf("Reloading the test proxy's policy: %v", err)
	}
}

func (p *proxy) writePolicy(version string) {
	p.t.Helper()
	policy := fixture.Policy{Version: version, Schedule: "immediate", Group: "default",
		Window: "0 2 * * *", Duration: time.Hour}.YAML()
	if err := os.WriteFile(p.policy, policy, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// teleportYAMLPath is the agent's configuration; install starts the agent
// only when it exists (the test agent itself does not read it).
const teleportYAMLPath = "/etc/teleport.yaml"

// teleportYAML is a configuration for the containers' agents.
var teleportYAML = []byte("version: v3\nteleport:\n  nodename: test\nssh_service:\n  enabled: yes\n")

// prepareForCLI returns a Prepare func that installs the CLI binary, trusts
// the test servers' certificate, pins the test signing key and configures
// the agent (writes /etc/teleport.yaml).
func prepareForCLI(cli string, c *cdn) func(root string) error {
	prepare := prepareUnconfigured(cli, c)
	return func(root string) error {
		if err := prepare(root); err != nil {
			return err
		}
		return writeFile(root, teleportYAMLPath, teleportYAML, 0o600)
	}
}

// prepareUnconfigured is prepareForCLI without /etc/teleport.yaml: a host
// on which the agent has not been configured yet.
func prepareUnconfigured(cli string, c *cdn) func(root string) error {
	return func(root string) error {
		bin, err := os.ReadFile(cli)
		if err != nil {
			return err
		}
		if err := writeFile(root, cliPath, bin, 0o755); err != nil {
			return err
		}
		if err := appendFile(root, caBundlePath, c.caPEM); err != nil {
			return fmt.Errorf("adding the test CA: %w", err)
		}
		return writeFile(root, testKeyPath, c.pubPEM, 0o644)
	}
}

// installedHost boots a host with the teleport-update binary cli and
// installs v1 from a new test proxy (health window healthWindow, census
// off).
func installedHost(t *testing.T, cli, healthWindow string) (*host, *proxy) {
	t.Helper()
	c := sharedCDN(t)
	px := newProxy(t, v1)
	h := bootHost(t, prepareForCLI(cli, c))
	h.mustRun(cliPath, "install", "--proxy", px.addr(), "--base-url", c.srv.URL, "--no-census", "--health-window", healthWindow)
	return h, px
}

// waitFor polls cond until it returns true or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("Timed out after %v waiting for %s.", timeout, what)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("Interrupted waiting for %s.", what)
		case <-time.After(pollEvery):
		}
	}
}
