package main

// End-to-end tests through the real binary: a real proxy (`teleport-update
// proxy serve` as a child process), a loopback HTTPS CDN serving signed
// releases, and the agent commands run as separate processes under --root.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// testBinary builds teleport-update once per test process, with the
// crash hook compiled in.
func testBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "teleport-update-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "teleport-update")
		cmd := exec.Command("go", "build", "-tags", "crashtest", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// e2e is one host root, one CDN, one proxy process.
type e2e struct {
	t        *testing.T
	bin      string
	dir      string // scratch
	root     string // the host's --root
	caFile   string // PEM bundle trusted by the child processes
	policy   string // the proxy's resource file
	key      *ecdsa.PrivateKey
	cdn      *fixture.CDN
	proxy    string // HOST:PORT
	token    string
	censusDB string
}

const e2eToken = "e2e-enrollment-token-0123456789abcdef"

func newE2E(t *testing.T) *e2e {
	t.Helper()
	e := &e2e{t: t, bin: testBinary(t), dir: t.TempDir(), root: t.TempDir(), token: e2eToken, cdn: fixture.NewCDN()}
	t.Cleanup(e.cdn.Close)
	keyDir := filepath.Join(e.dir, "keys")
	os.Mkdir(keyDir, 0o700)
	priv, pub, err := release.GenerateKey(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	if e.key, err = release.LoadPrivateKey(priv); err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := os.ReadFile(pub)
	if err := fixture.TrustKey(e.root, "test", pubPEM); err != nil {
		t.Fatal(err)
	}
	// The proxy's certificate comes from a throwaway CA; the CA and the
	// CDN's certificate form the bundle the child processes trust.
	tlsFiles, err := fixture.NewTLS(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := tlsFiles.CertFile, tlsFiles.KeyFile
	e.caFile = filepath.Join(e.dir, "ca.pem")
	os.WriteFile(e.caFile, append(tlsFiles.CAPEM, e.cdn.CertPEM()...), 0o644)

	e.policy = filepath.Join(e.dir, "policy.yaml")
	e.setPolicy("1.0.0", "immediate")
	tokens := filepath.Join(e.dir, "tokens.yaml")
	os.WriteFile(tokens, []byte(fmt.Sprintf("tokens:\n  - token: %q\n    group: staging\n", e.token)), 0o600)
	e.censusDB = filepath.Join(e.dir, "census.db")
	e.proxy = e.startProxy(certFile, keyFile, tokens)
	return e
}

func (e *e2e) startProxy(certFile, keyFile, tokens string) string {
	e.t.Helper()
	p, err := fixture.StartProxy(e.bin, "--resource", e.policy, "--listen", "127.0.0.1:0",
		"--tls-cert", certFile, "--tls-key", keyFile, "--tokens", tokens, "--census-db", e.censusDB, "--rollout-every", "100ms")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		p.Stop()
		if e.t.Failed() {
			e.t.Logf("proxy log:\n%s", p.Log())
		}
	})
	return p.Addr
}

// setPolicy rewrites the proxy's resource file; schedule is immediate or
// closed (a regular window that is not open now).
func (e *e2e) setPolicy(version, schedule string) {
	e.t.Helper()
	pol := fixture.Policy{Version: version, Schedule: schedule, Group: "staging", Window: "0 2 * * *", Duration: time.Minute}
	if schedule == "closed" {
		// A window on Feb 29 at 00:00 for one minute: not open during tests
		// run on other days.
		pol.Schedule, pol.Window = "regular", "0 0 29 2 *"
	}
	tmp := e.policy + ".tmp"
	os.WriteFile(tmp, pol.YAML(), 0o644)
	if err := os.Rename(tmp, e.policy); err != nil {
		e.t.Fatal(err)
	}
	if e.proxy != "" {
		e.waitTarget(version, schedule == "immediate")
	}
}

// waitTarget polls the proxy until it serves version with the window open
// or closed.
func (e *e2e) waitTarget(version string, open bool) {
	e.t.Helper()
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(e.caFile)
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get("https://" + e.proxy + "/v1/webapi/find?group=staging")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(body, []byte(`"agent_version":"`+version+`"`)) &&
				bytes.Contains(body, []byte(fmt.Sprintf(`"agent_auto_update":%t`, open))) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("proxy never served %s", version)
}

// publish builds, signs and serves an agent release.
func (e *e2e) publish(version string, broken bool) {
	e.t.Helper()
	data, err := releasetest.ScriptRelease(version, broken)
	if err != nil {
		e.t.Fatal(err)
	}
	e.serveRelease(version, "", data)
}

// serveRelease signs data and serves it as the tarball of version in
// edition ("" for the community one).
func (e *e2e) serveRelease(version, edition string, data []byte) {
	e.t.Helper()
	a, err := download.NewArtifact(download.ProductTeleport, version, runtime.GOOS, runtime.GOARCH)
	if err != nil {
		e.t.Fatal(err)
	}
	a.Edition = edition
	if err := e.cdn.Publish(e.key, e.dir, a.TarballName(), data); err != nil {
		e.t.Fatal(err)
	}
}

type runResult struct {
	code           int
	stdout, stderr string
	signaled       bool
}

// run executes the agent binary with --root and returns its outcome.
func (e *e2e) run(env []string, args ...string) runResult {
	e.t.Helper()
	return e.runBin(e.bin, env, args...)
}

// runBin executes bin with --root and returns its outcome.
func (e *e2e) runBin(bin string, env []string, args ...string) runResult {
	e.t.Helper()
	cmd := exec.Command(bin, append([]string{"--root", e.root}, args...)...)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+e.caFile)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := runResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
		r.signaled = ee.ExitCode() == -1
	} else if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *e2e) mustRun(args ...string) runResult {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code != 0 {
		e.t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

func (e *e2e) status() updater.StatusReport {
	e.t.Helper()
	r := e.mustRun("status", "--json")
	var st updater.StatusReport
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st
}

func (e *e2e) linked() string {
	dst, err := os.Readlink(filepath.Join(e.root, "usr/local/bin/teleport"))
	if err != nil {
		return ""
	}
	m := regexp.MustCompile(`versions/([^/]+)/bin/`).FindStringSubmatch(dst)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestE2ELifecycle(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.publish("2.0.0", false)
	e.publish("3.0.0", true)

	r := e.run([]string{"TELEPORT_INSTALL_METHOD_NODE_SCRIPT=true"}, "install", "--proxy", e.proxy, "--group", "staging",
		"--token", e.token, "--base-url", e.cdn.Server.URL)
	if r.code != 0 {
		t.Fatalf("install: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	st := e.status()
	if st.Active != "1.0.0" || st.Proxy != e.proxy || st.Target != "1.0.0" || !st.WindowOpen || e.linked() != "1.0.0" {
		t.Fatalf("after install: %+v linked=%s", st, e.linked())
	}
	cfg, _, _ := updater.LoadConfig(filepath.Join(e.root, "var/lib/teleport-update/update.yaml"))
	if len(cfg.Spec.InstallMethods) != 1 || cfg.Spec.InstallMethods[0] != "node_script" {
		t.Fatalf("install methods: %v", cfg.Spec.InstallMethods)
	}

	// Window closed: update exits 0 and changes nothing.
	e.setPolicy("2.0.0", "closed")
	e.mustRun("update")
	if st := e.status(); st.Active != "1.0.0" || st.WindowOpen {
		t.Fatalf("closed window moved the host: %+v", st)
	}

	// The proxy moves the target; update moves the host.
	e.setPolicy("2.0.0", "immediate")
	e.mustRun("update")
	st = e.status()
	if st.Active != "2.0.0" || st.Backup != "1.0.0" || e.linked() != "2.0.0" || st.LastUpdate == nil || !st.LastUpdate.Success {
		t.Fatalf("after update: %+v", st)
	}

	// A broken release is rolled back with a non-zero exit and one line on stderr.
	e.setPolicy("3.0.0", "immediate")
	r = e.run(nil, "update")
	if r.code != 1 || !strings.Contains(r.stderr, "rolled back") {
		t.Fatalf("broken update: exit %d\n%s", r.code, r.stderr)
	}
	st = e.status()
	if st.Active != "2.0.0" || len(st.Skip) != 1 || st.Skip[0] != "3.0.0" || e.linked() != "2.0.0" {
		t.Fatalf("after rollback: %+v", st)
	}

	// pin holds the host even when the proxy moves.
	e.mustRun("pin")
	e.publish("4.0.0", false)
	e.setPolicy("4.0.0", "immediate")
	e.mustRun("update")
	if st := e.status(); st.Active != "2.0.0" || !st.Pinned {
		t.Fatalf("pinned host moved: %+v", st)
	}
	e.mustRun("unpin")
	e.mustRun("update")
	if st := e.status(); st.Active != "4.0.0" {
		t.Fatalf("unpinned host did not follow: %+v", st)
	}

	// rollback switches to the backup now.
	e.mustRun("rollback", "--health-window", "1s")
	if st := e.status(); st.Active != "2.0.0" || e.linked() != "2.0.0" {
		t.Fatalf("after rollback: %+v", st)
	}

	// The census report reached the proxy's database: the last one came
	// from the update to 4.0.0 (rollback sends none).
	r = e.mustRun("proxy", "census", "--db", e.censusDB, "--json")
	var sum api.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil {
		t.Fatalf("census summary is not JSON: %v\n%s", err, r.stdout)
	}
	if sum.TotalHosts != 1 || !maps.Equal(sum.ByVersion, map[string]int{"4.0.0": 1}) ||
		!maps.Equal(sum.ByLastUpdateResult, map[string]int{api.ResultSuccess: 1}) {
		t.Errorf("census summary: %d hosts, versions %v, last results %v; want 1 host on 4.0.0 after a successful update:\n%s",
			sum.TotalHosts, sum.ByVersion, sum.ByLastUpdateResult, r.stdout)
	}

	// uninstall leaves nothing of ours.
	r = e.mustRun("uninstall")
	var left []string
	filepath.Walk(e.root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(e.root, p)
			if !strings.HasPrefix(rel, "etc/teleport-update/keys.d/") {
				left = append(left, rel)
			}
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("uninstall left files: %v\n%s", left, r.stdout)
	}
}

func TestE2EProxyDownChangesNothing(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	state := filepath.Join(e.root, "var/lib/teleport-update/update.yaml")
	// Point the host at a port nobody listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	e.mustRun("install", "--proxy", e.proxy, "--version", "1.0.0") // no-op re-install keeps working
	cfg, _, _ := updater.LoadConfig(state)
	cfg.Spec.Proxy = dead
	updater.SaveConfig(state, cfg)
	before, _ := os.ReadFile(state)
	r := e.run(nil, "update", "--now")
	if r.code != 1 || !strings.Contains(r.stderr, "keeps running 1.0.0") {
		t.Fatalf("proxy down: exit %d\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "teleport-update: ") {
		t.Errorf("the reason is not one line at the end of stderr:\n%s", r.stderr)
	}
	after, _ := os.ReadFile(state)
	if !bytes.Equal(before, after) {
		t.Fatalf("update.yaml changed:\n%s", after)
	}
}

// e2eCrashPaths says, for every step a host without systemd reaches,
// whether the crash test kills the run there on the way to a healthy
// version (false) and on the way back from a broken one (true).
var e2eCrashPaths = map[updater.Step][]bool{
	updater.StepUnpack:     {false, true},
	updater.StepDownload:   {false, true},
	updater.StepRename:     {false, true},
	updater.StepExtract:    {false, true},
	updater.StepLinkBinary: {false, true},
	updater.StepLink:       {false, true},
	updater.StepState:      {false}, // only a healthy version is committed
	updater.StepRevert:     {true},  // only a broken one is reverted
}

// TestE2ECrashCasesCoverAllSteps: the crash test below kills the run at
// every step of updater.AllSteps that a host without systemd reaches; the
// others are integration/systemd's TestCrashAtEveryStep.
func TestE2ECrashCasesCoverAllSteps(t *testing.T) {
	t.Parallel()
	checkCrashCoverage(t, "updater.AllSteps", updater.AllSteps, e2eCrashPaths)
}

// checkCrashCoverage checks that paths, the crash cases of a crash test,
// name every step of steps (called listName) that a host without systemd
// reaches, and no other.
func checkCrashCoverage(t *testing.T, listName string, steps []updater.Step, paths map[updater.Step][]bool) {
	t.Helper()
	for _, s := range steps {
		if p := paths[s]; (len(p) > 0) == s.NeedsSystemd() {
			t.Errorf("step %q: crash cases %v, but NeedsSystemd is %v", s, p, s.NeedsSystemd())
		}
	}
	for s := range paths {
		if !slices.Contains(steps, s) {
			t.Errorf("crash case for %q, which is not in %s", s, listName)
		}
	}
}

// crashCase is one run of a crash test: killed right after step at, on the
// way to a healthy target (broken false) or back from a broken one.
type crashCase struct {
	at     string // TELEPORT_UPDATE_CRASH_AT
	broken bool   // the target fails its health check (rollback path)
}

// crashCases lists the crash cases of paths in the order of steps.
func crashCases(steps []updater.Step, paths map[updater.Step][]bool) []crashCase {
	var cases []crashCase
	for _, step := range steps {
		for _, broken := range paths[step] {
			cases = append(cases, crashCase{string(step), broken})
		}
	}
	return cases
}

// TestE2ECrashAtEveryStep kills the updater with SIGKILL right after each
// step of an update (and of a rollback) and checks that the host stays
// consistent and the next run completes the job.
func TestE2ECrashAtEveryStep(t *testing.T) {
	t.Parallel()
	cases := crashCases(updater.AllSteps, e2eCrashPaths)
	// The release has two binaries: also kill after the second link.
	cases = append(cases, crashCase{string(updater.StepLinkBinary) + "#2", false}, crashCase{string(updater.StepLinkBinary) + "#2", true})
	for _, tc := range cases {
		name := tc.at
		if tc.broken {
			name += "-rollback"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newE2E(t)
			e.publish("1.0.0", false)
			e.publish("2.0.0", tc.broken)
			e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
			e.setPolicy("2.0.0", "immediate")

			r := e.run([]string{"TELEPORT_UPDATE_CRASH_AT=" + tc.at}, "update")
			if !r.signaled {
				t.Fatalf("run was not killed at %s: exit %d\n%s", tc.at, r.code, r.stderr)
			}
			if tc.at == string(updater.StepUnpack) {
				checkKilledMidUnpack(t, e.root)
			}
			// Right after the kill: update.yaml parses and names a version
			// that is installed and runs.
			st := e.status()
			checkRunnable(t, e.root, st.Active)

			// The next run finishes the job.
			r = e.run(nil, "update")
			st = e.status()
			want := "2.0.0"
			if tc.broken {
				want = "1.0.0"
				if !slices.Contains(st.Skip, "2.0.0") {
					t.Errorf("broken 2.0.0 not skipped after recovery: %+v", st)
				}
			} else if r.code != 0 {
				t.Fatalf("recovery run: exit %d\n%s", r.code, r.stderr)
			}
			if st.Active != want || e.linked() != want {
				t.Fatalf("after recovery: active=%s linked=%s want %s\n%s", st.Active, e.linked(), want, r.stderr)
			}
			checkRunnable(t, e.root, st.Active)
			checkNoLeftovers(t, e.root)
		})
	}
}

// checkKilledMidUnpack: a run killed while the release was being unpacked
// (before its hash was known) left its files in staging only: no version
// directory, no link into one.
func checkKilledMidUnpack(t *testing.T, root string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "var/lib/teleport-update/.staging/*/bin/*"))
	if len(files) == 0 {
		t.Error("no unpacked file in staging after a kill mid-unpack")
	}
	if _, err := os.Lstat(filepath.Join(root, "var/lib/teleport-update/versions/2.0.0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("versions/2.0.0 exists after a kill mid-unpack: %v", err)
	}
	if dst, _ := os.Readlink(filepath.Join(root, "usr/local/bin/teleport")); !strings.Contains(dst, "/1.0.0/") {
		t.Errorf("teleport links to %q after a kill mid-unpack", dst)
	}
}

func checkRunnable(t *testing.T, root, version string) {
	t.Helper()
	if version == "" {
		t.Fatal("no active version")
	}
	out, err := exec.Command(filepath.Join(root, "var/lib/teleport-update/versions", version, "bin/teleport"), "version").Output()
	if err != nil || !strings.Contains(string(out), "v"+version) {
		t.Fatalf("active version %s does not run: %v %s", version, err, out)
	}
}

func checkNoLeftovers(t *testing.T, root string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(root, "var/lib/teleport-update/versions"))
	for _, ent := range entries {
		if _, err := os.Stat(filepath.Join(root, "var/lib/teleport-update/versions", ent.Name(), ".verified")); err != nil {
			t.Errorf("half-installed version left: %s", ent.Name())
		}
	}
	staging, _ := filepath.Glob(filepath.Join(root, "var/lib/teleport-update/.staging/*"))
	if len(staging) > 0 {
		t.Errorf("staging left: %v", staging)
	}
}

func tlsConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// A census report the proxy refuses never changes the outcome of a run.
func TestE2ECensusFailureDoesNotFailUpdates(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.publish("2.0.0", false)
	r := e.run(nil, "install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL, "--token", "not-the-right-token-0123456789abcdefgh")
	if r.code != 0 || !strings.Contains(r.stderr, "Census report not delivered") {
		t.Fatalf("install with a refused census token: exit %d\n%s", r.code, r.stderr)
	}
	e.setPolicy("2.0.0", "immediate")
	r = e.run(nil, "update")
	if r.code != 0 || !strings.Contains(r.stderr, "Census report not delivered") {
		t.Fatalf("update with a refused census token: exit %d\n%s", r.code, r.stderr)
	}
	if st := e.status(); st.Active != "2.0.0" {
		t.Fatalf("update did not happen: %+v", st)
	}
}

// A host with automatic updates disabled contacts nobody, census included,
// until an admin turns census reporting on explicitly. The proxy is a real
// HTTPS server that counts what reaches it.
func TestE2EDisabledHostSendsNoCensus(t *testing.T) {
	t.Parallel()
	var reports, other atomic.Int32
	proxy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == api.CensusPath {
			reports.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		other.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(proxy.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	root := installedRoot(t, func(cfg *updater.Config) {
		cfg.Spec.Proxy = proxy.Listener.Addr().String()
		cfg.Spec.Token = e2eToken
		cfg.Spec.Enabled = false
	})
	bin := testBinary(t)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--root", root}, args...)...)
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+caFile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	censusOn := func() bool {
		t.Helper()
		var st updater.StatusReport
		if err := json.Unmarshal([]byte(run("status", "--offline", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		return st.Census
	}

	for _, args := range [][]string{{"update"}, {"update", "--now"}} {
		if out := run(args...); !strings.Contains(out, "Nothing to do (disabled)") {
			t.Fatalf("%v on a disabled host:\n%s", args, out)
		}
	}
	if n, m := reports.Load(), other.Load(); n != 0 || m != 0 {
		t.Fatalf("a disabled host sent %d census reports and %d other requests", n, m)
	}
	if censusOn() {
		t.Error("status says census is on for a disabled host")
	}

	// Explicitly on: the disabled host reports, and asks nothing else.
	run("census", "--enable")
	run("update")
	if n, m := reports.Load(), other.Load(); n != 1 || m != 0 {
		t.Fatalf("after census --enable: %d census reports and %d other requests, want 1 and 0", n, m)
	}
	if !censusOn() {
		t.Error("status says census is off after census --enable")
	}

	// And off again.
	run("census", "--disable")
	run("update")
	if n := reports.Load(); n != 1 {
		t.Fatalf("after census --disable: %d census reports, want still 1", n)
	}
}
