package systemd

import (
	"context"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

// vFIPS exists on the test CDN only as an Enterprise FIPS build, so a host
// that runs it fetched teleport-ent-v…-fips-bin.tar.gz.
const vFIPS = "5.0.0"

var fipsRelease extraReleases

// publishFIPS builds vFIPS as an Enterprise FIPS release, signs it with the
// suite's key and serves it from the shared CDN, once per run.
func publishFIPS(t *testing.T) {
	t.Helper()
	fipsRelease.publish(t, "the FIPS test release", func(ctx context.Context) error {
		dir := filepath.Join(buildDir, "fips")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// Packed as Teleport's CDN packs it: teleport-ent/ with the
		// example unit the agent unit is then rendered from.
		a := releasetest.Agent{Version: vFIPS, Mode: releasetest.ModeOK, Flavour: download.Flavour{Enterprise: true, FIPS: true}, TeleportLayout: true}
		p, err := a.Build(ctx, dir)
		if err != nil {
			return err
		}
		return putOnCDN(p)
	})
}

// setBuild points every group at version as the build edition/fips,
// updating at once.
func (p *proxy) setBuild(version, edition string, fips bool) {
	p.t.Helper()
	policy := fixture.Policy{Version: version, Schedule: "immediate", Group: "default",
		Window: "0 2 * * *", Duration: time.Hour, Edition: edition, FIPS: fips}.YAML()
	if err := os.WriteFile(p.policy, policy, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := p.api.Reload(); err != nil {
		p.t.Fatalf("Reloading the test proxy's policy: %v", err)
	}
}

// TestFIPSHost: on a real systemd, a host whose proxy serves Enterprise
// FIPS builds gets the -fips artifact and a unit that runs the agent with
// --fips; when the proxy turns to community builds, update refuses and the
// agent keeps running as it was, until install switches it.
func TestFIPSHost(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	cli := teleportUpdateBinary(t)
	c := sharedCDN(t)
	publishFIPS(t)
	px := newProxy(t, v1)
	px.setBuild(vFIPS, "ent", true)
	h := bootHost(t, prepareForCLI(cli, c))
	h.mustRun(cliPath, "install", "--proxy", px.addr(), "--base-url", c.srv.URL, "--no-census", "--health-window", healthWindow)
	h.mustRun("systemctl", "stop", updaterTimer)

	if got := h.runningVersion(); got != vFIPS {
		t.Fatalf("agent runs %s, want the FIPS build of %s", got, vFIPS)
	}
	if exec := h.show(agentUnit, "ExecStart")["ExecStart"]; !strings.Contains(exec, "start --fips --config") {
		t.Errorf("systemd runs %s with ExecStart %s; want --fips", agentUnit, exec)
	}
	// The unit was rendered from the release's own example unit.
	if env := h.show(agentUnit, "Environment")["Environment"]; !strings.Contains(env, strings.TrimPrefix(releasetest.ExampleUnitMarker, "Environment=")) {
		t.Errorf("%s has Environment=%q; want the release example's %s", agentUnit, env, releasetest.ExampleUnitMarker)
	}
	pid := h.show(agentUnit, "MainPID")["MainPID"]
	if args := strings.Split(h.mustRun("cat", "/proc/"+pid+"/cmdline"), "\x00"); len(args) < 3 || args[1] != "start" || args[2] != "--fips" {
		t.Errorf("the agent's command line is %q; want teleport start --fips …", args)
	}
	st := readStatus(h)
	if st.Active != vFIPS || st.Edition != "ent" || !st.FIPS {
		t.Errorf("status: active %s edition %q fips %t; want %s ent FIPS", st.Active, st.Edition, st.FIPS, vFIPS)
	}
	if y := h.mustRun("cat", path.Join(path.Dir(versionsDir), "update.yaml")); !strings.Contains(y, "version: "+vFIPS+"\n    flags: [Enterprise, FIPS]") {
		t.Errorf("update.yaml does not record the FIPS build:\n%s", y)
	}

	// The proxy turns to community builds: update refuses, nothing moves.
	px.setBuild(v2, "community", false)
	_, stderr, err := h.run(cliPath, "update", "--now", "--health-window", healthWindow)
	if err == nil || !strings.Contains(stderr, "does not change builds until an admin runs") {
		t.Fatalf("update to another build: %v\n%s", err, stderr)
	}
	if got := h.runningVersion(); got != vFIPS {
		t.Errorf("after the refused update the agent runs %s, want %s", got, vFIPS)
	}

	// An admin's install switches (naming the version, since v2 is below
	// the FIPS build's version), and the unit loses --fips.
	h.mustRun(cliPath, "install", "--version", v2, "--health-window", healthWindow)
	if got := h.runningVersion(); got != v2 {
		t.Errorf("after install the agent runs %s, want %s", got, v2)
	}
	if exec := h.show(agentUnit, "ExecStart")["ExecStart"]; strings.Contains(exec, "--fips") {
		t.Errorf("the community unit still runs --fips: %s", exec)
	}
}

// readStatus is status --json --offline as the agent's own report type.
func readStatus(h *host) updater.StatusReport {
	h.t.Helper()
	out := h.mustRun(cliPath, "status", "--json", "--offline")
	var st updater.StatusReport
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		h.t.Fatalf("Parsing status --json: %v\n%s", err, out)
	}
	return st
}
