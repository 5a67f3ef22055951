package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/atomicfile"
	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// Limits and pacing of the demo's own HTTP checks.
const (
	policyReloadTimeout = 30 * time.Second
	pollInterval        = 200 * time.Millisecond
	maxFindBytes        = 1 << 20
	maxSummaryBytes     = 4 << 20
	healthWindow        = "1s"
	group               = "staging"
)

// agentRelease is one release of the demo agent.
type agentRelease struct {
	version string
	broken  bool
	// teleportLayout packs the release as Teleport's CDN does: everything
	// under teleport/, with examples, the install script and docs.
	teleportLayout bool
}

var releases = []agentRelease{
	{version: "1.0.0"},
	{version: "2.0.0", teleportLayout: true},
	{version: "3.0.0", broken: true},
	{version: "4.0.0", broken: true},
}

// brokenStamp is the version a broken release's binary reports: it was
// mis-built, so `teleport version` does not say v3.0.0 and the exec health
// check fails; its `teleport start` also exits at once, so a systemd health
// check fails too.
const brokenStamp = "0.0.0-broken"

// demo holds the state of one run.
type demo struct {
	out  io.Writer
	repo string // module root
	work string // scratch directory
	step int

	updater string   // the built teleport-update
	env     []string // environment of teleport-update commands
	arch    string
	client  *http.Client // trusts only the demo CA

	cdnDir string
	cdnURL string
	cdn    *fixture.CDN // serves cdnDir

	proxy      *proxyProc
	policyPath string
	token      string // enrollment token for the demo group
	adminToken string // may read the census summary
	censusDB   string
	root       string // the host's filesystem root
}

// cleanup stops everything the demo started. It is safe to call twice.
func (d *demo) cleanup() {
	if d.proxy != nil {
		_ = d.proxy.stop()
		d.proxy = nil
	}
	if d.cdn != nil {
		d.cdn.Close()
		d.cdn = nil
	}
}

func (d *demo) play(ctx context.Context) error {
	d.printf("teleport-update demo: the whole product on loopback, in %s ($DEMO).\n", d.work)
	d.arch = runtime.GOARCH
	d.cdnDir = filepath.Join(d.work, "cdn")
	d.root = filepath.Join(d.work, "host")
	d.policyPath = filepath.Join(d.work, "proxy", "autoupdate_version.yaml")
	for _, dir := range []string{"bin", "cdn", "keys", "proxy", "build"} {
		if err := os.MkdirAll(filepath.Join(d.work, dir), 0o755); err != nil {
			return fmt.Errorf("create the demo directory %s: %w", dir, err)
		}
	}

	if err := d.build(ctx); err != nil {
		return err
	}
	pubKey, err := d.sign(ctx)
	if err != nil {
		return err
	}
	if err := d.startServers(ctx); err != nil {
		return err
	}
	if err := d.prepareHost(pubKey); err != nil {
		return err
	}
	if err := d.installV1(ctx); err != nil {
		return err
	}
	if err := d.updateToV2(ctx); err != nil {
		return err
	}
	if err := d.updateToBrokenV3(ctx); err != nil {
		return err
	}
	if err := d.showStatus(ctx); err != nil {
		return err
	}
	if err := d.showCensus(ctx); err != nil {
		return err
	}
	if err := d.canaryCatchesBrokenRelease(ctx, pubKey); err != nil {
		return err
	}
	d.stepf("Clean up.")
	if err := d.proxy.stop(); err != nil {
		return fmt.Errorf("stop the proxy: %w; its log:\n%s", err, d.proxy.logText())
	}
	d.proxy = nil
	d.cleanup()
	d.sayf("Stopped the proxy and the CDN; the demo's files go with them.")
	d.printf("\nThe demo finished: every step behaved as expected.\n")
	return nil
}

// build compiles teleport-update and the three agent releases (the test
// agent of internal/releasetest) as CDN tarballs.
func (d *demo) build(ctx context.Context) error {
	d.stepf("Build teleport-update and the demo agent (releases 1.0.0, 2.0.0, and the broken 3.0.0 and 4.0.0).")
	d.updater = filepath.Join(d.work, "bin", "teleport-update")
	if err := d.goBuild(ctx, d.updater, "./cmd/teleport-update"); err != nil {
		return err
	}
	for _, r := range releases {
		agent := releasetest.Agent{Version: r.version, Mode: releasetest.ModeOK, GOARCH: d.arch}
		if r.broken {
			agent = releasetest.Agent{Version: brokenStamp, Mode: releasetest.ModeExit, GOARCH: d.arch}
		}
		dir := filepath.Join(d.work, "build", r.version)
		d.printf("  $ go build %s (version %s, mode %s)\n", releasetest.AgentPackage, agent.Version, agent.Mode)
		built, err := agent.Build(ctx, dir)
		if err != nil {
			return fmt.Errorf("build the demo agent %s: %w", r.version, err)
		}
		tarball := filepath.Join(d.cdnDir, releasetest.MustArtifact(r.version, d.arch).TarballName())
		if r.teleportLayout {
			if err := d.packTeleportLayout(dir, agent, tarball); err != nil {
				return err
			}
			continue
		}
		if err := os.Rename(built, tarball); err != nil {
			return fmt.Errorf("publish the demo agent %s: %w", r.version, err)
		}
		if r.broken {
			d.sayf("Packed %s. It is broken: its binary reports v%s and exits as soon as it starts.", filepath.Base(tarball), brokenStamp)
		} else {
			d.sayf("Packed %s.", filepath.Base(tarball))
		}
	}
	return nil
}

// packTeleportLayout packs the agent built in dir into tarball in
// Teleport's own layout, the one its CDN publishes: one top directory
// teleport/ with the binaries, examples/systemd/teleport.service, the
// install script and the docs.
func (d *demo) packTeleportLayout(dir string, agent releasetest.Agent, tarball string) error {
	exe, err := os.ReadFile(filepath.Join(dir, releasetest.BinaryName(agent.Version, agent.Mode)))
	if err != nil {
		return fmt.Errorf("read the demo agent %s: %w", agent.Version, err)
	}
	files := map[string][]byte{
		"teleport/teleport": exe,
		"teleport/tctl":     exe,
		"teleport/install":  []byte("#!/bin/sh\necho 'install Teleport from this tarball by hand' >&2\n"),
		"teleport/examples/systemd/teleport.service": []byte("[Unit]\nDescription=Teleport Service\n\n[Service]\nExecStart=/usr/local/bin/teleport start --config /etc/teleport.yaml\n"),
		"teleport/README.md":                         []byte("Teleport " + agent.Version + " (demo)\n"),
		"teleport/VERSION":                           []byte(agent.Version + "\n"),
	}
	if err := fixture.WriteTarball(tarball, files); err != nil {
		return fmt.Errorf("publish the demo agent %s: %w", agent.Version, err)
	}
	d.sayf("Packed %s in Teleport's own layout, as its CDN publishes releases:", filepath.Base(tarball))
	for _, name := range slices.Sorted(maps.Keys(files)) {
		d.printf("      %s\n", name)
	}
	return nil
}

// expectTeleportLayout checks where version's Teleport-layout files were
// installed.
func (d *demo) expectTeleportLayout(version string) error {
	dir := install.New(d.root).VersionDir(version)
	for _, f := range []string{"bin/teleport", "bin/tctl", "share/README.md", "share/VERSION", "lib/systemd/system/teleport.service"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("%s from Teleport's layout: %w", f, err)
		}
	}
	for _, f := range []string{"bin/install", "install", "teleport"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%s of Teleport's layout was installed; want it skipped or mapped", f)
		}
	}
	return nil
}

// goBuild runs `go build -o out [flags] pkg` in the module root.
func (d *demo) goBuild(ctx context.Context, out, pkg string, flags ...string) error {
	args := append([]string{"build", "-o", out}, flags...)
	args = append(args, pkg)
	d.printf("  $ go %s\n", d.shorten(strings.Join(args, " ")))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = d.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return nil
}

// sign generates the throwaway release key and signs every agent release
// with teleport-update itself. It returns the public key (PEM).
func (d *demo) sign(ctx context.Context) ([]byte, error) {
	d.stepf("Generate a throwaway signing key and sign the three releases.")
	d.env = d.childEnv()
	keyDir := filepath.Join(d.work, "keys")
	if _, err := d.tu(ctx, "release", "keygen", "--out", keyDir); err != nil {
		return nil, err
	}
	privKey := filepath.Join(keyDir, release.PrivateKeyFile)
	pubKey := filepath.Join(keyDir, release.PublicKeyFile)
	for _, r := range releases {
		tarball := filepath.Join(d.cdnDir, releasetest.MustArtifact(r.version, d.arch).TarballName())
		if _, err := d.tu(ctx, "release", "sign", "--key", privKey, tarball); err != nil {
			return nil, err
		}
		for _, ext := range []string{release.ChecksumSuffix, release.BundleSuffix, release.SignatureSuffix} {
			if _, err := os.Stat(tarball + ext); err != nil {
				return nil, fmt.Errorf("release sign did not write %s: %w", filepath.Base(tarball+ext), err)
			}
		}
	}
	d.sayf("Each release now has a .sha256, a Sigstore bundle (.sigstore.json) and a plain signature (.sig).")
	pub, err := os.ReadFile(pubKey)
	if err != nil {
		return nil, fmt.Errorf("read the public key: %w", err)
	}
	return pub, nil
}

// childEnv is the environment of teleport-update commands: the demo CA is
// their only trusted root.
func (d *demo) childEnv() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "SSL_CERT_FILE" || k == "SSL_CERT_DIR" || strings.HasPrefix(k, "TELEPORT_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "SSL_CERT_FILE="+filepath.Join(d.work, "ca.pem"))
}

// startServers starts the HTTPS CDN and the proxy.
func (d *demo) startServers(ctx context.Context) error {
	d.stepf("Start a local HTTPS CDN and the proxy (`teleport-update proxy serve`), with a throwaway CA.")
	ca, err := fixture.NewCA("teleport-update demo CA")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.work, "ca.pem"), ca.PEM, 0o644); err != nil {
		return fmt.Errorf("write the CA certificate: %w", err)
	}
	d.client = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}},
	}

	cdnTLS, err := ca.ServerConfig("demo CDN")
	if err != nil {
		return err
	}
	d.cdn = fixture.NewCDNTLS(d.cdnDir, cdnTLS)
	d.cdnURL = d.cdn.URL()
	d.sayf("The CDN serves $DEMO/cdn at %s; only the demo's processes trust its certificate (SSL_CERT_FILE).", d.cdnURL)

	certPath := filepath.Join(d.work, "proxy", "tls.crt")
	keyPath := filepath.Join(d.work, "proxy", "tls.key")
	if err := ca.IssueFiles("demo proxy", certPath, keyPath); err != nil {
		return err
	}
	if err := d.writePolicy("1.0.0"); err != nil {
		return err
	}
	d.printf("  The policy file %s:\n", d.shorten(d.policyPath))
	policy, err := os.ReadFile(d.policyPath)
	if err != nil {
		return fmt.Errorf("read the policy: %w", err)
	}
	d.echo(string(policy))
	if d.token, err = randomToken(); err != nil {
		return err
	}
	if d.adminToken, err = randomToken(); err != nil {
		return err
	}
	tokensPath := filepath.Join(d.work, "proxy", "tokens.yaml")
	if err := writeTokens(tokensPath, d.token, d.adminToken); err != nil {
		return err
	}
	d.censusDB = filepath.Join(d.work, "proxy", "census.db")
	addrFile := filepath.Join(d.work, "proxy", "addr")
	d.proxy, err = d.startProxy(ctx, addrFile, "proxy", "serve",
		"--resource", d.policyPath,
		"--listen", "127.0.0.1:0",
		"--addr-file", addrFile,
		"--tls-cert", certPath,
		"--tls-key", keyPath,
		"--tokens", tokensPath,
		"--census-db", d.censusDB,
		"--rollout-every", "300ms",
		"--install-key", filepath.Join(d.work, "keys", release.PublicKeyFile),
	)
	if err != nil {
		return err
	}
	return d.waitForTarget(ctx, "1.0.0")
}

// writePolicy writes the autoupdate_version resource with target version,
// atomically so the proxy never reads half a file.
func (d *demo) writePolicy(version string) error {
	policy := fixture.Policy{Version: version, Schedule: "immediate", Group: group,
		Window: "0 2 * * *", Duration: time.Hour}.YAML()
	if err := atomicfile.WriteFile(d.policyPath, policy, 0o644); err != nil {
		return fmt.Errorf("write the policy: %w", err)
	}
	return nil
}

// randomToken returns a fresh enrollment token (64 hex characters).
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate a token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// writeTokens writes the proxy's static enrollment tokens file: token is
// bound to the demo group, admin may read the census summary.
func writeTokens(path, token, admin string) error {
	body := fmt.Sprintf("tokens:\n  - token: %s\n    group: %s\n  - token: %s\n    admin: true\n", token, group, admin)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return fmt.Errorf("write the tokens file: %w", err)
	}
	return nil
}

// findAnswer is the part of the proxy's find answer the demo looks at.
type findAnswer struct {
	AutoUpdate struct {
		AgentVersion    string `json:"agent_version"`
		AgentAutoUpdate bool   `json:"agent_auto_update"`
	} `json:"auto_update"`
}

// waitForTarget polls the proxy's find endpoint until it serves version.
func (d *demo) waitForTarget(ctx context.Context, version string) error {
	u := url.URL{Scheme: "https", Host: d.proxy.addr, Path: api.FindPath, RawQuery: url.Values{"group": {group}}.Encode()}
	ctx, cancel := context.WithTimeout(ctx, policyReloadTimeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var last string
	for {
		got, err := d.find(ctx, u.String())
		if err == nil && got.AutoUpdate.AgentVersion == version {
			d.sayf("The proxy now tells group %q to run %s.", group, version)
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "it still answers " + got.AutoUpdate.AgentVersion
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the proxy did not serve target version %s within %s (%s); its log:\n%s",
				version, policyReloadTimeout, last, d.proxy.logText())
		case <-ticker.C:
		}
	}
}

func (d *demo) find(ctx context.Context, u string) (*findAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFindBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the find answer: %w", err)
	}
	if len(body) > maxFindBytes {
		return nil, fmt.Errorf("the find answer exceeds %d bytes", maxFindBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("find answered %s", resp.Status)
	}
	var a findAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("decode the find answer: %w", err)
	}
	return &a, nil
}

// prepareHost creates the temporary host root and pins the demo key in it.
func (d *demo) prepareHost(pubKey []byte) error {
	// The updater insists on directories of 0755 or stricter from the root
	// down, whatever the umask made.
	if err := os.MkdirAll(d.root, 0o755); err != nil {
		return fmt.Errorf("create the host root: %w", err)
	}
	if err := os.Chmod(d.root, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", d.root, err)
	}
	if err := fixture.TrustKey(d.root, "demo", pubKey); err != nil {
		return fmt.Errorf("pin the demo key: %w", err)
	}
	// Like every systemd-era host, the demo host has a machine id; the
	// census reports only a salted hash of it.
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("generate a machine id: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.root, "etc", "machine-id"), []byte(hex.EncodeToString(id)+"\n"), 0o444); err != nil {
		return fmt.Errorf("write the host's machine id: %w", err)
	}
	return nil
}

// statusJSON is the part of `teleport-update status --json` the demo checks.
type statusJSON struct {
	Proxy      string   `json:"proxy"`
	Group      string   `json:"group"`
	BaseURL    string   `json:"base_url"`
	Active     string   `json:"active"`
	Backup     string   `json:"backup"`
	Skip       []string `json:"skip"`
	Target     string   `json:"target"`
	LastUpdate *struct {
		Target  string `json:"target"`
		Success bool   `json:"success"`
		Error   string `json:"error"`
	} `json:"last_update"`
}

func (d *demo) status(ctx context.Context) (*statusJSON, string, error) {
	args := []string{"--root", d.root, "status", "--json"}
	res, err := d.runCmdEcho(ctx, false, d.updater, args...)
	if err != nil {
		return nil, "", err
	}
	if res.exitCode != 0 {
		d.echo(res.stdout + res.stderr)
		return nil, "", fmt.Errorf("teleport-update status --json exited %d, want 0", res.exitCode)
	}
	var s statusJSON
	if err := json.Unmarshal([]byte(res.stdout), &s); err != nil {
		return nil, "", fmt.Errorf("decode status --json: %w\n%s", err, res.stdout)
	}
	return &s, res.stdout, nil
}

// linkedVersion runs the agent through /usr/local/bin/teleport in the host
// root and returns what it says.
func (d *demo) linkedVersion(ctx context.Context) (string, error) {
	res, err := d.runCmd(ctx, filepath.Join(d.root, "usr", "local", "bin", "teleport"), "version")
	if err != nil {
		return "", err
	}
	if res.exitCode != 0 {
		return "", fmt.Errorf("the linked teleport version exited %d", res.exitCode)
	}
	return res.stdout, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// expectHost checks status --json and the linked binary.
func (d *demo) expectHost(ctx context.Context, active, backup string, skipped ...string) error {
	s, raw, err := d.status(ctx)
	if err != nil {
		return err
	}
	var problems []string
	if s.Active != active {
		problems = append(problems, fmt.Sprintf("active is %q, want %q", s.Active, active))
	}
	if s.Backup != backup {
		problems = append(problems, fmt.Sprintf("backup is %q, want %q", s.Backup, backup))
	}
	for _, v := range skipped {
		if !slices.Contains(s.Skip, v) {
			problems = append(problems, fmt.Sprintf("skip list %q lacks %s", s.Skip, v))
		}
	}
	if len(problems) > 0 {
		d.echo(raw)
		return fmt.Errorf("unexpected host state: %s", strings.Join(problems, "; "))
	}
	d.printf("    active %s, backup %s, skipped %s\n", orNone(s.Active), orNone(s.Backup), orNone(strings.Join(s.Skip, " ")))
	out, err := d.linkedVersion(ctx)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "v"+active+" ") {
		return fmt.Errorf("/usr/local/bin/teleport says %q, want version %s", strings.TrimSpace(out), active)
	}
	return nil
}

func (d *demo) installV1(ctx context.Context) error {
	d.stepf("Install the agent on a new host (a temporary root, with the demo key pinned in etc/teleport-update/keys.d).")
	if err := d.installHost(ctx); err != nil {
		return err
	}
	if err := d.expectHost(ctx, "1.0.0", ""); err != nil {
		return err
	}
	d.sayf("The host runs 1.0.0, downloaded from the CDN and verified against the pinned key.")
	return nil
}

// installHost installs the agent on the host at d.root with the demo
// group's token.
func (d *demo) installHost(ctx context.Context) error {
	// The agent's configuration names the proxy, and the enrollment token
	// comes in a file only its owner reads, not on the command line.
	if err := os.WriteFile(filepath.Join(d.root, "etc", "teleport.yaml"), []byte("version: v3\nteleport:\n  proxy_server: "+d.proxy.addr+"\n"), 0o600); err != nil {
		return err
	}
	tokenFile := filepath.Join(d.work, "token")
	if err := os.WriteFile(tokenFile, []byte(d.token+"\n"), 0o600); err != nil {
		return err
	}
	_, err := d.tu(ctx, "--root", d.root, "install",
		"--group", group,
		"--token-file", tokenFile,
		"--base-url", d.cdnURL,
		"--health-window", healthWindow,
	)
	return err
}

func (d *demo) updateToV2(ctx context.Context) error {
	d.stepf("Move the policy to 2.0.0 and run the updater.")
	if err := d.writePolicy("2.0.0"); err != nil {
		return err
	}
	if err := d.waitForTarget(ctx, "2.0.0"); err != nil {
		return err
	}
	if _, err := d.tu(ctx, "--root", d.root, "update", "--now", "--health-window", healthWindow); err != nil {
		return err
	}
	if err := d.expectHost(ctx, "2.0.0", "1.0.0"); err != nil {
		return err
	}
	d.sayf("2.0.0 is active and passed its health check; 1.0.0 is kept as the backup.")
	if err := d.expectTeleportLayout("2.0.0"); err != nil {
		return err
	}
	d.sayf("2.0.0 came in Teleport's layout: teleport/teleport and teleport/tctl are in versions/2.0.0/bin/, README.md and VERSION in share/, the unit example in lib/systemd/system/; the install script was skipped.")
	return nil
}

func (d *demo) updateToBrokenV3(ctx context.Context) error {
	d.stepf("Move the policy to the broken 3.0.0 and run the updater: it must fail its health check and roll back.")
	if err := d.writePolicy("3.0.0"); err != nil {
		return err
	}
	if err := d.waitForTarget(ctx, "3.0.0"); err != nil {
		return err
	}
	res, err := d.runCmd(ctx, d.updater, "--root", d.root, "update", "--now", "--health-window", healthWindow)
	if err != nil {
		return err
	}
	if res.exitCode == 0 {
		return errors.New("teleport-update update to the broken 3.0.0 exited 0, want a failure")
	}
	d.sayf("The update failed as expected (exit %d).", res.exitCode)
	if err := d.expectHost(ctx, "2.0.0", "1.0.0", "3.0.0"); err != nil {
		return err
	}
	d.sayf("The host rolled back to 2.0.0 and put 3.0.0 on its skip list, so it will not try it again.")

	d.printf("  Now run the updater once more, as its timer would:\n")
	tarball := releasetest.MustArtifact("3.0.0", d.arch).TarballName()
	before := d.cdn.Served(tarball)
	if _, err := d.runCmd(ctx, d.updater, "--root", d.root, "update", "--now", "--health-window", healthWindow); err != nil {
		return err
	}
	if n := d.cdn.Served(tarball) - before; n != 0 {
		return fmt.Errorf("the updater downloaded the skipped 3.0.0 again (%d requests)", n)
	}
	if err := d.expectHost(ctx, "2.0.0", "1.0.0", "3.0.0"); err != nil {
		return err
	}
	d.sayf("3.0.0 was not downloaded again; the host stays on 2.0.0 until an admin or a newer release says otherwise.")
	return nil
}

func (d *demo) showStatus(ctx context.Context) error {
	d.stepf("Show the host's status.")
	_, err := d.tu(ctx, "--root", d.root, "status")
	return err
}

func (d *demo) showCensus(ctx context.Context) error {
	d.stepf("Show the census: what the host sends, and the proxy's summary of its fleet.")
	if _, err := d.tu(ctx, "--root", d.root, "census", "--json"); err != nil {
		return err
	}
	u := url.URL{Scheme: "https", Host: d.proxy.addr, Path: api.CensusSummaryPath}
	d.printf("  GET %s (with the admin token)\n", u.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("census summary: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+d.adminToken)
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("census summary: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSummaryBytes+1))
	if err != nil {
		return fmt.Errorf("census summary: read: %w", err)
	}
	if len(body) > maxSummaryBytes {
		return fmt.Errorf("census summary: the answer exceeds %d bytes", maxSummaryBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("census summary: the proxy answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var sum api.Summary
	if err := json.Unmarshal(body, &sum); err != nil {
		return fmt.Errorf("census summary: decode: %w", err)
	}
	d.printf("    hosts:              %d\n", sum.TotalHosts)
	for _, row := range []struct {
		name   string
		counts map[string]int
	}{
		{"by version", sum.ByVersion},
		{"by group", sum.ByGroup},
		{"by install method", sum.ByInstallMethod},
		{"by updater status", sum.ByUpdaterStatus},
		{"by last update", sum.ByLastUpdateResult},
		{"by architecture", sum.ByArchitecture},
	} {
		d.printf("    %-19s %s\n", row.name+":", formatCounts(row.counts))
	}
	if sum.TotalHosts != 1 {
		return fmt.Errorf("the census counts %d hosts, want the demo host", sum.TotalHosts)
	}
	d.sayf("The host reported itself to the proxy: version, group, install method and its last update result.")
	return nil
}

// formatCounts prints a count map as "a=1 b=2", sorted by key.
func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// moduleRoot returns the directory of the teleport-update module.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root with go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the demo from inside the teleport-update module (go run ./demo)")
	}
	return filepath.Dir(gomod), nil
}
