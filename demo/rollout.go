package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gravitational/teleport-update/internal/atomicfile"
	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// rolloutPolicy rolls the demo group from 2.0.0 to the broken 4.0.0 with
// one canary, in a window that is always open.
const rolloutPolicy = `kind: autoupdate_version
version: v1
spec:
  agents:
    start_version: 2.0.0
    target_version: 4.0.0
    mode: enabled
    schedule: regular
    jitter_seconds: 0
    groups:
      - name: ` + group + `
        window: "* * * * *"
        duration: 1h
        canary_count: 1
`

// rolloutTimeout bounds the wait for the proxy's rollout evaluations.
const rolloutTimeout = 30 * time.Second

// canaryCatchesBrokenRelease adds two hosts next to the first one, starts
// a rollout to the broken 4.0.0 with one canary, and shows that only the
// canary ever runs it: it fails its health check and rolls back, the proxy
// halts the group on its report, and the other hosts stay on 2.0.0.
func (d *demo) canaryCatchesBrokenRelease(ctx context.Context, pubKey []byte) error {
	d.stepf("A staged rollout: two more hosts join; the policy rolls the group from 2.0.0 to the broken 4.0.0 with one canary.")
	// The new hosts install 2.0.0, the version the first host runs.
	if err := d.writePolicy("2.0.0"); err != nil {
		return err
	}
	if err := d.waitForTarget(ctx, "2.0.0"); err != nil {
		return err
	}
	first := d.root
	roots := []string{first}
	for i := 2; i <= 3; i++ {
		d.root = filepath.Join(d.work, fmt.Sprintf("host%d", i))
		if err := d.prepareHost(pubKey); err != nil {
			return err
		}
		if err := d.installHost(ctx); err != nil {
			return err
		}
		roots = append(roots, d.root)
	}
	d.root = first
	if err := atomicfile.WriteFile(d.policyPath, []byte(rolloutPolicy), 0o644); err != nil {
		return fmt.Errorf("write the rollout policy: %w", err)
	}
	d.printf("  The policy file now:\n")
	d.echo(rolloutPolicy)
	g, err := d.waitRollout(ctx, rollout.Canary)
	if err != nil {
		return err
	}
	canary, err := canaryRoot(roots, g.Canaries[0].UpdaterID)
	if err != nil {
		return err
	}
	d.sayf("The proxy picked one canary among the three reporting hosts (%s); only it is served 4.0.0.", d.shorten(canary))

	d.stepf("Run the updater on every host, as their timers would.")
	for _, root := range roots {
		res, err := d.runCmd(ctx, d.updater, "--root", root, "update", "--health-window", healthWindow)
		if err != nil {
			return err
		}
		if (root == canary) != (res.exitCode != 0) {
			return fmt.Errorf("update on %s exited %d: only the canary should fail", d.shorten(root), res.exitCode)
		}
	}
	g, err = d.waitRollout(ctx, rollout.Halted)
	if err != nil {
		return err
	}
	d.sayf("The canary failed its health check, rolled back to 2.0.0 and reported it; the proxy halted the group: %s.", g.Reason)
	if _, err := d.tu(ctx, "proxy", "rollout", "status", "--db", d.censusDB, "--resource", d.policyPath); err != nil {
		return err
	}
	for _, root := range roots {
		if _, err := d.runCmdEcho(ctx, false, d.updater, "--root", root, "update", "--health-window", healthWindow); err != nil {
			return err
		}
		if v, err := activeVersion(root); err != nil || v != "2.0.0" {
			return fmt.Errorf("host %s runs %q (%v); want 2.0.0", d.shorten(root), v, err)
		}
	}
	d.sayf("Every host runs 2.0.0; 4.0.0 reached one host of three. `teleport-update proxy rollout resume %s` would let it go on.", group)
	return nil
}

// waitRollout polls the rollout status until the demo group is in state.
func (d *demo) waitRollout(ctx context.Context, state rollout.State) (proxyapi.RolloutGroupStatus, error) {
	deadline := time.Now().Add(rolloutTimeout)
	for {
		res, err := d.runCmdEcho(ctx, false, d.updater, "proxy", "rollout", "status", "--json", "--db", d.censusDB, "--resource", d.policyPath)
		if err != nil {
			return proxyapi.RolloutGroupStatus{}, err
		}
		var st proxyapi.RolloutStatus
		if res.exitCode == 0 && json.Unmarshal([]byte(res.stdout), &st) == nil && len(st.Groups) > 0 && st.Groups[0].State == state {
			return st.Groups[0], nil
		}
		if time.Now().After(deadline) {
			return proxyapi.RolloutGroupStatus{}, fmt.Errorf("the group did not reach %s within %s; last status:\n%s%s\nproxy log:\n%s",
				state, rolloutTimeout, res.stdout, res.stderr, d.proxy.logText())
		}
		select {
		case <-ctx.Done():
			return proxyapi.RolloutGroupStatus{}, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// canaryRoot returns the host root whose updater id is id.
func canaryRoot(roots []string, id string) (string, error) {
	for _, root := range roots {
		cfg, _, err := updater.LoadConfig(install.New(root).StatePath())
		if err != nil {
			return "", err
		}
		if cfg.Spec.UpdaterID == id {
			return root, nil
		}
	}
	return "", fmt.Errorf("the canary %s is none of the demo hosts", id)
}

// activeVersion reads the host's active version from its update.yaml.
func activeVersion(root string) (string, error) {
	cfg, _, err := updater.LoadConfig(install.New(root).StatePath())
	if err != nil {
		return "", err
	}
	return cfg.Status.Active, nil
}
