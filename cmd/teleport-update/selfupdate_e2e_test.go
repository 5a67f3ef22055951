package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater"
)

// The updater the test releases carry: the real program at another
// version, working or with a setup that fails.
const releaseUpdaterVersion = "1.5.0"

var (
	updaterBuildMu sync.Mutex
	updaterBuilds  = map[bool][]byte{}
)

// releaseUpdater builds teleport-update releaseUpdaterVersion once per
// test process; broken makes its setup fail.
func releaseUpdater(t *testing.T, broken bool) []byte {
	t.Helper()
	updaterBuildMu.Lock()
	defer updaterBuildMu.Unlock()
	if b, ok := updaterBuilds[broken]; ok {
		return b
	}
	dir, err := os.MkdirTemp("", "teleport-update-release-")
	if err != nil {
		t.Fatal(err)
	}
	p, err := releasetest.Updater{Version: releaseUpdaterVersion, BrokenSetup: broken}.Build(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	updaterBuilds[broken] = b
	return b
}

// publishWithUpdater publishes agent release version carrying updater as
// bin/teleport-update.
func (e *e2e) publishWithUpdater(version string, updaterBin []byte) {
	e.t.Helper()
	data, err := releasetest.ScriptReleaseWithUpdater(version, false, updaterBin)
	if err != nil {
		e.t.Fatal(err)
	}
	e.serveRelease(version, "", data)
}

// inPlace is the updater the units (and so the timer) run.
func (e *e2e) inPlace() string { return filepath.Join(e.root, updater.UpdaterBinPath) }

// timer runs `update` as the timer does: the updater in place.
func (e *e2e) timer(env ...string) runResult {
	e.t.Helper()
	return e.runBin(e.inPlace(), env, "update")
}

// inPlaceStatus is `status --offline --json` of the updater in place.
func (e *e2e) inPlaceStatus() updater.StatusReport {
	e.t.Helper()
	r := e.runBin(e.inPlace(), nil, "status", "--offline", "--json")
	if r.code != 0 {
		e.t.Fatalf("status of the updater in place: exit %d\n%s", r.code, r.stderr)
	}
	var st updater.StatusReport
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st
}

// inPlaceVersion is what the updater in place says its version is.
func (e *e2e) inPlaceVersion() string {
	e.t.Helper()
	r := e.runBin(e.inPlace(), nil, "version")
	if r.code != 0 {
		e.t.Fatalf("the updater in place does not run: exit %d\n%s", r.code, r.stderr)
	}
	f := strings.Fields(r.stdout)
	if len(f) < 2 {
		e.t.Fatalf("version: %q", r.stdout)
	}
	return strings.TrimPrefix(f[1], "v")
}

// unitsWrittenBy checks that both updater units name version as their writer.
func (e *e2e) unitsWrittenBy(version string) {
	e.t.Helper()
	for _, u := range []string{updater.UpdaterUnit, updater.UpdaterTimerUnit} {
		b, err := os.ReadFile(filepath.Join(e.root, "etc/systemd/system", u))
		if err != nil || !bytes.Contains(b, []byte("# Written by teleport-update "+version+".\n")) {
			e.t.Errorf("%s not written by %s: %v\n%s", u, version, err, b)
		}
	}
}

// selfUpdateHost is a host on 1.0.0 whose proxy now serves 2.0.0, whose
// release carries the updater b.
func selfUpdateHost(t *testing.T, b []byte) *e2e {
	t.Helper()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.publishWithUpdater("2.0.0", b)
	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	e.setPolicy("2.0.0", "immediate")
	return e
}

// TestE2ESelfUpdate: a host on updater A (this build, 0.0.0-dev) given a
// release whose tarball carries updater B runs B after one timer run, with
// B's units in place; the next timer run is B's and works.
func TestE2ESelfUpdate(t *testing.T) {
	t.Parallel()
	e := selfUpdateHost(t, releaseUpdater(t, false))
	before := e.inPlaceVersion()
	if before != version {
		t.Fatalf("installed updater is %s, want this build's %s", before, version)
	}
	r := e.timer()
	if r.code != 0 {
		t.Fatalf("timer run: exit %d\n%s", r.code, r.stderr)
	}
	if v := e.inPlaceVersion(); v != releaseUpdaterVersion {
		t.Fatalf("after one timer run the updater in place is %s, want %s\n%s", v, releaseUpdaterVersion, r.stderr)
	}
	e.unitsWrittenBy(releaseUpdaterVersion)
	st := e.inPlaceStatus()
	if st.Active != "2.0.0" || st.UpdaterVersion != releaseUpdaterVersion || st.LastSelfUpdate == nil || !st.LastSelfUpdate.Success || st.LastSelfUpdate.From != version {
		t.Fatalf("status after the self-update: %+v (last %+v)", st, st.LastSelfUpdate)
	}
	if _, err := os.Stat(filepath.Join(e.root, "var/lib/teleport-update/updater-backup")); !os.IsNotExist(err) {
		t.Errorf("updater backup left: %v", err)
	}
	if r := e.timer(); r.code != 0 {
		t.Fatalf("the new updater's timer run: exit %d\n%s", r.code, r.stderr)
	}
	// An admin's install with the older updater keeps the newer one.
	e.mustRun("install", "--proxy", e.proxy)
	if v := e.inPlaceVersion(); v != releaseUpdaterVersion {
		t.Fatalf("install replaced the newer updater in place with %s", v)
	}
}

// TestE2ESelfUpdateBrokenKeepsPrevious: a B whose setup fails leaves A in
// place with A's units, the agent on the new version, and the failure in
// status; the next run does not try B again.
func TestE2ESelfUpdateBrokenKeepsPrevious(t *testing.T) {
	t.Parallel()
	e := selfUpdateHost(t, releaseUpdater(t, true))
	a, err := os.ReadFile(e.inPlace())
	if err != nil {
		t.Fatal(err)
	}
	r := e.timer()
	if r.code != 0 {
		t.Fatalf("timer run: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("timer run:\n%s", r.stderr)
	if now, _ := os.ReadFile(e.inPlace()); !bytes.Equal(now, a) {
		t.Fatal("the updater in place is not the previous one after a failed setup")
	}
	e.unitsWrittenBy(version)
	st := e.inPlaceStatus()
	l := st.LastSelfUpdate
	if st.Active != "2.0.0" || e.linked() != "2.0.0" || st.UpdaterVersion != version || l == nil || l.Success || l.To != releaseUpdaterVersion || l.ErrorCode != updater.CodeSelfUpdate || !strings.Contains(l.Error, "setup fails") {
		t.Fatalf("status after a failed self-update: %+v (last %+v)", st, l)
	}
	if r := e.timer(); r.code != 0 || strings.Contains(r.stderr, "Updating teleport-update itself") {
		t.Fatalf("second timer run tried the broken updater again: exit %d\n%s", r.code, r.stderr)
	}
	if st2 := e.inPlaceStatus(); !st2.LastSelfUpdate.Time.Equal(l.Time) {
		t.Fatalf("the failure record changed: %+v", st2.LastSelfUpdate)
	}
}

// TestE2ESelfUpdateWithoutUpdaterInRelease: a release without
// teleport-update leaves the updater in place alone.
func TestE2ESelfUpdateWithoutUpdaterInRelease(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.publish("2.0.0", false)
	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	e.setPolicy("2.0.0", "immediate")
	if r := e.timer(); r.code != 0 {
		t.Fatalf("timer run: exit %d\n%s", r.code, r.stderr)
	}
	st := e.inPlaceStatus()
	if st.Active != "2.0.0" || e.inPlaceVersion() != version || st.LastSelfUpdate != nil {
		t.Fatalf("after an update to a release without an updater: %+v", st)
	}
}

// TestE2ESelfUpdateNeverBelowFormat: an updater older than the one that
// wrote update.yaml's format is never installed.
func TestE2ESelfUpdateNeverBelowFormat(t *testing.T) {
	t.Parallel()
	e := selfUpdateHost(t, releaseUpdater(t, false))
	path := filepath.Join(e.root, "var/lib/teleport-update/update.yaml")
	cfg, _, err := updater.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Status.Updater.Format != updater.StateFormat || cfg.Status.Updater.FormatBy != version {
		t.Fatalf("install recorded format %d by %q", cfg.Status.Updater.Format, cfg.Status.Updater.FormatBy)
	}
	cfg.Status.Updater.FormatBy = "9.0.0"
	if err := updater.SaveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	r := e.timer()
	if r.code != 0 || !strings.Contains(r.stderr, "older than the one that wrote update.yaml's format") {
		t.Fatalf("timer run: exit %d\n%s", r.code, r.stderr)
	}
	if v := e.inPlaceVersion(); v != version {
		t.Fatalf("the updater went below the format's writer: %s", v)
	}
}

// selfCrashPaths says, for each step of a self-update, on which paths
// (a working new updater: false; a broken one: true) a host without
// systemd reaches it.
var selfCrashPaths = map[updater.Step][]bool{
	updater.StepSelfBackup:  {false, true},
	updater.StepSelfMarker:  {false, true},
	updater.StepSelfBinary:  {false, true},
	updater.StepSetupUnits:  {false, true},
	updater.StepSetupState:  {false},
	updater.StepSelfRestore: {true},
	// The previous updater's setup, back in place.
	updater.StepSetupBackUnits: {true},
	updater.StepSetupBackState: {true},
	updater.StepSelfDone:       {false, true},
}

// TestE2ESelfUpdateCrashCasesCoverAllSteps: the crash test below covers
// every step of updater.SelfUpdateSteps a host without systemd reaches.
func TestE2ESelfUpdateCrashCasesCoverAllSteps(t *testing.T) {
	checkCrashCoverage(t, "updater.SelfUpdateSteps", updater.SelfUpdateSteps, selfCrashPaths)
}

// TestE2ESelfUpdateCrashAtEveryStep kills the timer's run (and the setup
// it runs) with SIGKILL right after each step of a self-update: the
// updater in place still runs and reads the state, and the next timer run
// ends with the new updater in place (or, when its setup fails, the
// previous one and the failure recorded).
func TestE2ESelfUpdateCrashAtEveryStep(t *testing.T) {
	for _, tc := range crashCases(updater.SelfUpdateSteps, selfCrashPaths) {
		name := tc.at
		if tc.broken {
			name += "-broken"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := selfUpdateHost(t, releaseUpdater(t, tc.broken))
			if r := e.timer("TELEPORT_UPDATE_CRASH_AT=" + tc.at); !r.signaled {
				t.Fatalf("run was not killed at %s: exit %d\n%s", tc.at, r.code, r.stderr)
			}
			e.inPlaceVersion()
			if st := e.inPlaceStatus(); st.Active != "2.0.0" {
				t.Fatalf("after the kill the agent is not committed: %+v", st)
			}
			if r := e.timer(); r.code != 0 {
				t.Fatalf("recovery run: exit %d\n%s", r.code, r.stderr)
			}
			checkSelfUpdateEnd(t, e, tc.broken)
		})
	}
}

// checkSelfUpdateEnd checks the host after a self-update ended: the new
// updater in place, or after a broken one the previous, with the failure.
func checkSelfUpdateEnd(t *testing.T, e *e2e, broken bool) {
	t.Helper()
	want := releaseUpdaterVersion
	if broken {
		want = version
	}
	st := e.inPlaceStatus()
	if v := e.inPlaceVersion(); v != want || st.UpdaterVersion != want || st.SelfUpdating {
		t.Fatalf("after recovery: in place %s, status %+v; want %s", v, st, want)
	}
	if l := st.LastSelfUpdate; l == nil || l.Success == broken || broken && l.ErrorCode != updater.CodeSelfUpdate {
		t.Fatalf("last self-update after recovery: %+v", l)
	}
	e.unitsWrittenBy(want)
	if _, err := os.Stat(filepath.Join(e.root, "var/lib/teleport-update/updater-backup")); !os.IsNotExist(err) {
		t.Errorf("updater backup left: %v", err)
	}
	checkRunnable(t, e.root, "2.0.0")
}
