package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// rolloutE2EPolicy rolls staging from 1.0.0 to 2.0.0 with one canary, in a
// window that is always open.
const rolloutE2EPolicy = `kind: autoupdate_version
version: v1
spec:
  agents:
    start_version: 1.0.0
    target_version: 2.0.0
    mode: enabled
    schedule: regular
    jitter_seconds: 0
    groups:
      - name: staging
        window: "* * * * *"
        duration: 1h
        canary_count: 1
`

// TestE2ERolloutCanaryCatchesBrokenRelease: through the real proxy process
// and the real updater binary on two hosts, a release that fails its
// health check reaches only the canary the proxy picked; the canary rolls
// back and reports it, the proxy halts the group, and the other host never
// runs the release.
func TestE2ERolloutCanaryCatchesBrokenRelease(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.publish("2.0.0", true)
	// The second host trusts the same release key.
	rootB := t.TempDir()
	if err := os.CopyFS(rootB, os.DirFS(e.root)); err != nil {
		t.Fatal(err)
	}
	tmp := e.policy + ".tmp"
	os.WriteFile(tmp, []byte(rolloutE2EPolicy), 0o644)
	if err := os.Rename(tmp, e.policy); err != nil {
		t.Fatal(err)
	}
	// Before the group starts, the proxy serves the start version.
	e.waitTarget("1.0.0", false)
	roots := []string{e.root, rootB}
	for _, root := range roots {
		e.root = root
		e.mustRun("install", "--proxy", e.proxy, "--group", "staging", "--token", e.token, "--base-url", e.cdn.Server.URL)
		if e.linked() != "1.0.0" {
			t.Fatalf("host %s installed %s; want the start version", root, e.linked())
		}
	}
	// The proxy, evaluating every 100 ms, picks one of them as canary.
	st := e.waitRollout(func(g proxyapi.RolloutGroupStatus) bool { return g.State == rollout.Canary })
	canaryID := st.Canaries[0].UpdaterID
	var canary, other string
	for _, root := range roots {
		cfg, _, err := updater.LoadConfig(install.New(root).StatePath())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Spec.UpdaterID == canaryID {
			canary = root
		} else {
			other = root
		}
	}
	if canary == "" || other == "" {
		t.Fatalf("canary %s is neither host", canaryID)
	}
	// The other host is held at the start version; the canary tries the
	// release, fails its health check and rolls back.
	e.root = other
	if r := e.mustRun("update"); !strings.Contains(r.stdout, "holds this host at 1.0.0 (group staging tries 2.0.0 on its canaries first)") {
		t.Errorf("the non-canary host's update does not say why it is held:\n%s", r.stdout)
	}
	if e.linked() != "1.0.0" {
		t.Fatalf("the non-canary host moved to %s while the group was in canary", e.linked())
	}
	e.root = canary
	if r := e.run(nil, "update"); r.code != 1 || !strings.Contains(r.stderr, "rolled back") {
		t.Fatalf("canary update: exit %d\n%s", r.code, r.stderr)
	}
	halted := e.waitRollout(func(g proxyapi.RolloutGroupStatus) bool { return g.State == rollout.Halted })
	if !strings.Contains(halted.Reason, "failed") || halted.Canaries[0].Outcome != "failure" || halted.Canaries[0].ErrorCode == "" {
		t.Errorf("halted group: %+v", halted)
	}
	e.root = other
	e.mustRun("update")
	if e.linked() != "1.0.0" {
		t.Fatalf("the non-canary host moved to %s after the group halted", e.linked())
	}
	if r := e.mustRun("status"); !strings.Contains(r.stdout, "holds this host: the rollout to 2.0.0 is halted in group staging") {
		t.Errorf("status of a host in a halted group does not say so:\n%s", r.stdout)
	}
}

// waitRollout polls `proxy rollout status --json` until staging matches.
func (e *e2e) waitRollout(match func(proxyapi.RolloutGroupStatus) bool) proxyapi.RolloutGroupStatus {
	e.t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r := e.run(nil, "proxy", "rollout", "status", "--json", "--db", e.censusDB, "--resource", e.policy)
		last = r.stdout + r.stderr
		var st proxyapi.RolloutStatus
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
			continue
		}
		if g := st.Groups[0]; match(g) {
			return g
		}
	}
	e.t.Fatalf("the rollout never reached the state; last status:\n%s", last)
	return proxyapi.RolloutGroupStatus{}
}
