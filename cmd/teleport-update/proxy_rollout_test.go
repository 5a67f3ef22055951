package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/census/store/storetest"
	"github.com/gravitational/teleport-update/internal/proxyapi"
	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

const rolloutCLIPolicy = `kind: autoupdate_version
version: v1
spec:
  agents:
    target_version: 2.0.0
    start_version: 1.0.0
    mode: enabled
    schedule: regular
    groups:
      - name: dev
        window: "0 2 * * *"
        duration: 1h
        canary_count: 1
      - name: prod
        window: "0 4 * * *"
        duration: 1h
`

// TestProxyRolloutCLI: status reads the rollout from the database; halt,
// resume, mark-done and rollback change it with one guarded write each,
// refusing actions that do not apply; the history shows every one.
func TestProxyRolloutCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, policy := filepath.Join(dir, "census.db"), filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(rolloutCLIPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	r := storetest.Report(0, "dev", "1.0.0", storetest.Tried("2.0.0", false, now))
	if err := st.Ingest(ctx, "dev", r, storetest.Ident(r), now); err != nil {
		t.Fatal(err)
	}
	canary := []rollout.Host{{HostID: storetest.HostID(0), UpdaterID: storetest.UpdaterID(0)}}
	if ok, err := st.RolloutTransition(ctx, "2.0.0", rollout.Transition{Group: "dev", From: rollout.Unstarted, To: rollout.Canary,
		Reason: "its window is open", Actor: "proxy", Initial: 1, Canaries: canary}, now); !ok || err != nil {
		t.Fatalf("RolloutTransition = %t, %v", ok, err)
	}
	st.Close()
	flags := []string{"--db", db, "--resource", policy}

	for _, step := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"resume", "dev"}, 1, "canary, not halted or rolled back"},
		{[]string{"halt", "nope"}, 1, "no such group"},
		{[]string{"halt", "dev", "--reason", "looks odd"}, 0, "dev: canary → halted (looks odd)"},
		{[]string{"resume", "dev"}, 0, "dev: halted → active"},
		{[]string{"mark-done", "dev"}, 0, "dev: active → done"},
		{[]string{"rollback", "prod"}, 0, "prod: unstarted → rolledback"},
		{[]string{"rollback", "prod"}, 1, "rolledback already"},
	} {
		code, out, errOut := runCLI(t, append(append([]string{"proxy", "rollout"}, step.args...), flags...)...)
		if code != step.code || !strings.Contains(out+errOut, step.out) {
			t.Errorf("rollout %v = %d %q %q; want %d and %q", step.args, code, out, errOut, step.code, step.out)
		}
	}
	code, out, errOut := runCLI(t, append([]string{"proxy", "rollout", "status", "--json"}, flags...)...)
	if code != 0 {
		t.Fatalf("status --json = %d %s", code, errOut)
	}
	var status proxyapi.RolloutStatus
	if err := json.Unmarshal([]byte(out), &status); err != nil {
		t.Fatal(err)
	}
	dev := status.Groups[0]
	if dev.State != rollout.Done || dev.Initial != 1 || dev.Present != 1 || dev.Failed != 1 || len(dev.Canaries) != 1 ||
		dev.Canaries[0].Outcome != "failure" || len(dev.Canaries[0].Steps) == 0 || status.Groups[1].State != rollout.RolledBack {
		t.Errorf("status = %s", out)
	}
	if len(status.History) != 5 || status.History[0].Actor != "operator" || status.History[4].Actor != "proxy" {
		t.Errorf("history = %+v", status.History)
	}
	code, out, _ = runCLI(t, append([]string{"proxy", "rollout", "status"}, flags...)...)
	for _, want := range []string{"Rollout 1.0.0 → 2.0.0 (halt-on-error)", "dev", "done", "canary of dev", "failure", "run log: download", "HISTORY"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := runCLI(t, "proxy", "rollout", "status", "--db", db); code != 2 || !strings.Contains(errOut, "--resource") {
		t.Errorf("status without --resource = %d %q; want a usage error", code, errOut)
	}
}
