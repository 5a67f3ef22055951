package systemd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater"
)

// Releases whose tarball carries teleport-update selfUpdaterVersion: a
// working one (vSelf), and one whose setup fails (vSelfBroken). The agent
// in both is healthy.
const (
	vSelf              = "6.0.0"
	vSelfBroken        = "7.0.0"
	selfUpdaterVersion = "1.5.0"
)

var selfReleases extraReleases

// publishSelfUpdates builds vSelf and vSelfBroken with their updaters,
// signs them with the suite's key and serves them from the shared CDN,
// once per run.
func publishSelfUpdates(t *testing.T) {
	t.Helper()
	selfReleases.publish(t, "the self-update test releases", buildSelfUpdates)
}

func buildSelfUpdates(ctx context.Context) error {
	dir := filepath.Join(buildDir, "self")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for v, broken := range map[string]bool{vSelf: false, vSelfBroken: true} {
		bin, err := releasetest.Updater{Version: selfUpdaterVersion, BrokenSetup: broken}.Build(ctx, dir)
		if err != nil {
			return err
		}
		exe, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		p, err := releasetest.Agent{Version: v, Mode: releasetest.ModeOK, TeleportLayout: true, Updater: exe}.Build(ctx, dir)
		if err != nil {
			return err
		}
		if err := putOnCDN(p); err != nil {
			return err
		}
	}
	return nil
}

// fireTimer makes the update timer fire now and waits for its run to end
// successfully.
func fireTimer(h *host) {
	h.t.Helper()
	runsBefore := h.show(updaterUnit, "InvocationID")["InvocationID"]
	const dropIn = "[Timer]\nOnActiveSec=1s\nAccuracySec=1s\nRandomizedDelaySec=0\n"
	if err := writeFile(h.c.Root(), "/etc/systemd/system/"+updaterTimer+".d/fire-now.conf", []byte(dropIn), 0o644); err != nil {
		h.t.Fatal(err)
	}
	h.mustRun("systemctl", "daemon-reload")
	h.mustRun("systemctl", "restart", updaterTimer)
	waitFor(h.t, timerTimeout, "the timer's update run to finish", func() bool {
		p := h.show(updaterUnit, "InvocationID", "ActiveState")
		return p["InvocationID"] != runsBefore && p["ActiveState"] != "activating" && p["ActiveState"] != "active"
	})
	if res := h.show(updaterUnit, "Result", "ExecMainStatus"); res["Result"] != "success" || res["ExecMainStatus"] != "0" {
		h.t.Fatalf("%s finished with %v; want success, 0\n%s", updaterUnit, res, h.c.Journal(updaterUnit))
	}
}

// TestSelfUpdateByTimer: a host on updater A (this build, 0.0.0-dev),
// given a release whose tarball carries updater B, runs B after one run of
// its timer (sandboxed as installed), with the units B rendered loaded by
// systemd. A B whose setup fails leaves A in place with A's units, the
// agent on the new version, and the failure in status.
func TestSelfUpdateByTimer(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	publishSelfUpdates(t)
	for _, tc := range []struct {
		name, release, wantUpdater string
	}{
		{"working", vSelf, selfUpdaterVersion},
		{"broken", vSelfBroken, "0.0.0-dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, px := installedHost(t, teleportUpdateBinary(t), "2s")
			px.setTarget(tc.release)
			fireTimer(h)
			if got := h.runningVersion(); got != tc.release {
				t.Errorf("agent runs %s after the timer's run, want %s", got, tc.release)
			}
			if out := h.mustRun(cliPath, "version"); !strings.HasPrefix(out, "teleport-update v"+tc.wantUpdater+" ") {
				t.Errorf("the updater in place says %q, want %s\n%s", out, tc.wantUpdater, h.c.Journal(updaterUnit))
			}
			for _, u := range []string{updaterUnit, updaterTimer} {
				if cat := h.mustRun("systemctl", "cat", u); !strings.Contains(cat, "# Written by teleport-update "+tc.wantUpdater+".") {
					t.Errorf("systemd has %s not written by %s:\n%s", u, tc.wantUpdater, cat)
				}
			}
			if p := h.show(updaterUnit, "NeedDaemonReload"); p["NeedDaemonReload"] != "no" {
				t.Errorf("%s changed on disk without a daemon-reload: %v", updaterUnit, p)
			}
			st := readStatus(h)
			l := st.LastSelfUpdate
			if st.UpdaterVersion != tc.wantUpdater || l == nil || l.Success != (tc.release == vSelf) || l.To != selfUpdaterVersion {
				t.Errorf("status after the timer's run: updater %s, last self-update %+v", st.UpdaterVersion, l)
			}
			if tc.release == vSelfBroken && l != nil && l.ErrorCode != updater.CodeSelfUpdate {
				t.Errorf("failure recorded as %q, want %q", l.ErrorCode, updater.CodeSelfUpdate)
			}
			// The updater in place runs the next timer run.
			fireTimer(h)
		})
	}
}

// TestSelfUpdateCrashAtReload kills a self-update right after systemd
// reloaded the units of the updater that set itself up: the new one's on
// the way to a working updater, the previous one's on the way back from a
// broken one (the steps a host without systemd never reaches; the others
// are TestE2ESelfUpdateCrashAtEveryStep). The updater in place runs, and
// the next run ends with the right updater and its units loaded.
func TestSelfUpdateCrashAtReload(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	publishSelfUpdates(t)
	for _, tc := range []struct {
		step             updater.Step
		release, updater string
	}{
		{updater.StepSetupReload, vSelf, selfUpdaterVersion},
		{updater.StepSetupBackReload, vSelfBroken, "0.0.0-dev"},
	} {
		t.Run(string(tc.step), func(t *testing.T) {
			t.Parallel()
			h, px := installedHost(t, crashtestBinary(t), "2s")
			h.mustRun("systemctl", "stop", updaterTimer)
			px.setTarget(tc.release)
			o, e, err := h.run("env", crashEnv+"="+string(tc.step), cliPath, "update", "--now", "--health-window", "2s")
			if !killed(err) {
				t.Fatalf("update was not killed at %s (%v)\n%s%s", tc.step, err, o, e)
			}
			h.mustRun(cliPath, "version")
			if st := readStatus(h); st.Active != tc.release {
				t.Fatalf("after the kill the agent is not committed: %+v", st)
			}
			h.mustRun(cliPath, "update", "--now", "--health-window", "2s")
			if out := h.mustRun(cliPath, "version"); !strings.HasPrefix(out, "teleport-update v"+tc.updater+" ") {
				t.Errorf("after recovery the updater in place says %q, want %s", out, tc.updater)
			}
			if cat := h.mustRun("systemctl", "cat", updaterUnit); !strings.Contains(cat, "# Written by teleport-update "+tc.updater+".") {
				t.Errorf("systemd has %s not written by %s:\n%s", updaterUnit, tc.updater, cat)
			}
			if p := h.show(updaterUnit, "NeedDaemonReload"); p["NeedDaemonReload"] != "no" {
				t.Errorf("%s changed on disk without a daemon-reload: %v", updaterUnit, p)
			}
			if st := readStatus(h); st.SelfUpdating || st.LastSelfUpdate == nil || st.LastSelfUpdate.Success != (tc.release == vSelf) {
				t.Errorf("status after recovery: %+v", st.LastSelfUpdate)
			}
		})
	}
}
