package main

// End-to-end tests of Teleport's verbs, variables and habits, and of first
// installs on hosts whose agent is not configured yet, through the real
// binary against a real proxy and CDN.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// writeTeleportYAML writes the agent's configuration under the host root.
func (e *e2e) writeTeleportYAML(text string) {
	e.t.Helper()
	p := filepath.Join(e.root, "etc/teleport.yaml")
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// tokenFile writes token to a new file of mode perm and returns its path.
func (e *e2e) tokenFile(token string, perm os.FileMode) string {
	e.t.Helper()
	p := filepath.Join(e.t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), perm); err != nil {
		e.t.Fatal(err)
	}
	os.Chmod(p, perm)
	return p
}

func (e *e2e) config() *updater.Config {
	e.t.Helper()
	cfg, ok, err := updater.LoadConfig(install.New(e.root).StatePath())
	if err != nil || !ok {
		e.t.Fatalf("update.yaml: exists %v, %v", ok, err)
	}
	return cfg
}

// enable on a host that was never installed is a first install, as
// Teleport's own enable is: the proxy comes from /etc/teleport.yaml, the
// token from a root-only file, group and CDN from the environment. On an
// installed host enable turns the timer back on and saves settings given.
func TestE2EEnableInstallsNewHost(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.writeTeleportYAML("version: v3\nteleport:\n  nodename: n1\n  proxy_server: " + e.proxy + "\n  join_params:\n    method: token\n    token_name: x\nssh_service:\n  enabled: yes\n")
	r := e.run([]string{"TELEPORT_UPDATE_GROUP=staging", "TELEPORT_CDN_BASE_URL=" + e.cdn.Server.URL},
		"enable", "--token-file", e.tokenFile(e.token, 0o600))
	if r.code != 0 {
		t.Fatalf("enable on a new host: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if want := `Installed Teleport 1.0.0 (proxy ` + e.proxy + `, group "staging")`; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout %q lacks %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "Using the proxy named in /etc/teleport.yaml") {
		t.Errorf("stderr does not say where the proxy came from:\n%s", r.stderr)
	}
	if strings.Contains(r.stdout, "Automatic updates enabled.") {
		t.Errorf("enable on a new host did more than install:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "not started") {
		t.Errorf("a configured host was told its agent was not started:\n%s", r.stdout)
	}
	cfg := e.config()
	if cfg.Status.Active != "1.0.0" || cfg.Spec.Proxy != e.proxy || cfg.Spec.Token != e.token || cfg.Spec.BaseURL != e.cdn.Server.URL || !cfg.Spec.Enabled {
		t.Fatalf("after enable: spec %+v status %+v", cfg.Spec, cfg.Status)
	}
	if e.linked() != "1.0.0" {
		t.Fatalf("linked %q", e.linked())
	}
	nr, err := os.ReadFile(filepath.Join(e.root, "etc/needrestart/conf.d/teleport-update.conf"))
	if err != nil || !strings.Contains(string(nr), `$nrconf{override_rc}{qr(^teleport\.service$)} = 0;`) {
		t.Fatalf("needrestart drop-in: %q, %v", nr, err)
	}

	// Installed: enable only turns updates back on.
	e.mustRun("disable")
	if e.config().Spec.Enabled {
		t.Fatal("disable left the host enabled")
	}
	r = e.mustRun("enable")
	if strings.TrimSpace(r.stdout) != "Automatic updates enabled." || !e.config().Spec.Enabled {
		t.Fatalf("re-enable: %q, enabled %v", r.stdout, e.config().Spec.Enabled)
	}
	// Settings given to enable on an installed host are saved.
	e.mustRun("disable")
	r = e.mustRun("enable", "--group", "production")
	if cfg := e.config(); cfg.Spec.Group != "production" || !cfg.Spec.Enabled || cfg.Status.Active != "1.0.0" {
		t.Fatalf("enable --group on an installed host: spec %+v status %+v\n%s", cfg.Spec, cfg.Status, r.stdout)
	}

	// uninstall removes the drop-in.
	e.mustRun("uninstall")
	if _, err := os.Stat(filepath.Join(e.root, "etc/needrestart/conf.d/teleport-update.conf")); !os.IsNotExist(err) {
		t.Fatalf("needrestart drop-in after uninstall: %v", err)
	}
}

// Each variable is used when its flag is absent; a flag wins over its
// variable; a proxy given that differs from /etc/teleport.yaml's is used,
// with a warning; --log-format json makes every log line a JSON object.
func TestE2EEnvironmentVariables(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.publish("2.0.0", false)
	e.writeTeleportYAML("version: v2\nteleport:\n  auth_servers:\n    - elsewhere.example.com:3080\n")
	r := e.run([]string{
		"TELEPORT_PROXY=" + e.proxy,
		"TELEPORT_UPDATE_GROUP=not-this-one",
		"TELEPORT_UPDATE_VERSION=2.0.0",
		"TELEPORT_CDN_BASE_URL=https://cdn.invalid",
		"TELEPORT_UPDATE_TOKEN=" + e.token,
	}, "--log-format", "json", "install", "--group", "staging", "--base-url", e.cdn.Server.URL)
	if r.code != 0 {
		t.Fatalf("install from the environment: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	cfg := e.config()
	if cfg.Status.Active != "2.0.0" || cfg.Spec.Proxy != e.proxy || cfg.Spec.Group != "staging" ||
		cfg.Spec.BaseURL != e.cdn.Server.URL || cfg.Spec.Token != e.token {
		t.Fatalf("after install: spec %+v status %+v", cfg.Spec, cfg.Status)
	}
	var warned bool
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("--log-format json wrote a line that is not JSON: %q", line)
		}
		if rec["level"] == "WARN" && strings.Contains(rec["msg"].(string), "differs from the one in /etc/teleport.yaml") &&
			rec["teleport_yaml_proxy"] == "elsewhere.example.com:3080" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning that the proxy differs from /etc/teleport.yaml's:\n%s", r.stderr)
	}
	if r := e.run(nil, "--log-format", "xml", "status"); r.code != exitUsage || !strings.Contains(r.stderr, "want text or json") {
		t.Errorf("--log-format xml: exit %d\n%s", r.code, r.stderr)
	}
}

// The enrollment token is read from a root-only file; an unsafe one is
// refused before anything is installed; --token still works with a
// warning; -d logs at debug.
func TestE2ETokenFile(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	state := install.New(e.root).StatePath()
	base := []string{"install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL}

	readable := e.tokenFile(e.token, 0o644)
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(e.tokenFile(e.token, 0o600), link)
	empty := e.tokenFile("", 0o600)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"group/world-readable", []string{"--token-file", readable}, exitFailure, "mode 0644 is group/world-readable"},
		{"symlink", []string{"--token-file", link}, exitFailure, "is a symlink"},
		{"empty", []string{"--token-file", empty}, exitFailure, "the file is empty"},
		{"missing", []string{"--token-file", filepath.Join(t.TempDir(), "none")}, exitFailure, "no such file"},
		{"both", []string{"--token-file", empty, "--token", e.token}, exitUsage, "mutually exclusive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(nil, append(base, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("exit %d, want %d with %q:\n%s", r.code, tc.code, tc.msg, r.stderr)
			}
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Fatalf("update.yaml written by a refused install: %v", err)
			}
		})
	}

	r := e.run(nil, append([]string{"-d"}, append(base, "--token", e.token)...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "use --token-file or TELEPORT_UPDATE_TOKEN instead") {
		t.Fatalf("--token: exit %d, want 0 with a warning:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "level=DEBUG") {
		t.Errorf("-d logged nothing at debug:\n%s", r.stderr)
	}
	if e.config().Spec.Token != e.token {
		t.Fatal("the token given with --token was not saved")
	}
}

// A first install on a host with no /etc/teleport.yaml installs and links
// the version, says what to do next, exits 0 and skip-lists nothing.
func TestE2EUnconfiguredHostNextSteps(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	r := e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	for _, want := range []string{
		"The agent was not started: /etc/teleport.yaml does not exist.",
		"teleport node configure --proxy=" + e.proxy,
		"systemctl enable --now teleport",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if st := e.status(); st.Active != "1.0.0" || len(st.Skip) != 0 || e.linked() != "1.0.0" {
		t.Fatalf("after install: %+v linked %q", st, e.linked())
	}
	// Once configured, a re-install says nothing more.
	e.writeTeleportYAML("version: v3\nteleport:\n  proxy_server: " + e.proxy + "\n")
	if r := e.mustRun("install"); strings.Contains(r.stdout, "not started") {
		t.Fatalf("configured host told its agent was not started:\n%s", r.stdout)
	}
}
