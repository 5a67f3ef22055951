package updater

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/updater/install"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

func TestInstallUpdateRollbackSkip(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	ctx := context.Background()
	e.publish("1.0.0", false)
	e.publish("2.0.0", false)
	e.publish("3.0.0", true)

	// First install follows the proxy's target even with the window closed.
	e.setTarget("1.0.0", false, 0)
	if _, err := u.Install(ctx, InstallRequest{Proxy: e.proxyAddr(), Group: "staging", BaseURL: e.cdn.Server.URL, InstallMethods: []string{"node_script"}}); err != nil {
		t.Fatalf("install: %v", err)
	}
	cfg := e.config()
	if cfg.Status.Active != "1.0.0" || e.linked() != "1.0.0" {
		t.Fatalf("after install: active=%q linked=%q", cfg.Status.Active, e.linked())
	}
	if cfg.Spec.Proxy != e.proxyAddr() || cfg.Spec.BaseURL != e.cdn.Server.URL || !slices.Equal(cfg.Spec.InstallMethods, []string{"node_script"}) {
		t.Fatalf("spec not recorded: %+v", cfg.Spec)
	}
	for _, bin := range []string{"teleport", "tctl"} {
		if _, err := os.Stat(filepath.Join(e.root, "usr/local/bin", bin)); err != nil {
			t.Errorf("binary %s not linked: %v", bin, err)
		}
	}

	// Window closed: nothing happens and the CDN is not contacted.
	e.setTarget("2.0.0", false, 0)
	before := e.cdn.TotalHits()
	res, err := u.Update(ctx, false)
	if err != nil || res.Outcome != OutcomeWindowClosed {
		t.Fatalf("update with closed window: %v %v", res, err)
	}
	if e.cdn.TotalHits() != before {
		t.Fatalf("closed window contacted the CDN")
	}

	// Window open: move to 2.0.0, keep 1.0.0 as backup.
	e.setTarget("2.0.0", true, 0)
	if res, err = u.Update(ctx, false); err != nil || res.Outcome != OutcomeUpdated {
		t.Fatalf("update to 2.0.0: %v %v", res, err)
	}
	cfg = e.config()
	if cfg.Status.Active != "2.0.0" || cfg.Status.Backup != "1.0.0" || e.linked() != "2.0.0" {
		t.Fatalf("after update: %+v linked=%q", cfg.Status, e.linked())
	}

	// A broken 3.0.0 fails its health check: rolled back, skipped.
	e.setTarget("3.0.0", true, 0)
	_, err = u.Update(ctx, false)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("update to broken 3.0.0: got %v, want ErrRolledBack", err)
	}
	cfg = e.config()
	if cfg.Status.Active != "2.0.0" || e.linked() != "2.0.0" || !cfg.Status.IsSkipped("3.0.0") {
		t.Fatalf("after rollback: %+v linked=%q", cfg.Status, e.linked())
	}
	if lu := cfg.Status.LastUpdate; lu == nil || lu.Success || lu.Target != "3.0.0" || lu.ErrorCode != "health_check" {
		t.Fatalf("last_update after rollback: %+v", lu)
	}
	if _, ok, _ := install.New(e.root).Installed("1.0.0"); !ok {
		t.Errorf("backup 1.0.0 was removed")
	}

	// The skipped version is not downloaded again.
	hits := e.cdn.Hits(e.artifact("3.0.0").TarballName())
	if res, err = u.Update(ctx, false); err != nil || res.Outcome != OutcomeSkipped {
		t.Fatalf("update to skipped: %v %v", res, err)
	}
	if e.cdn.Hits(e.artifact("3.0.0").TarballName()) != hits {
		t.Fatalf("skipped version downloaded again")
	}
	if left := e.stagingLeft(); len(left) > 0 {
		t.Fatalf("staging left behind: %v", left)
	}

	// Manual rollback to the backup skips the version rolled back from.
	cfg, err = u.Rollback(ctx)
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if cfg.Status.Active != "1.0.0" || cfg.Status.Backup != "2.0.0" || e.linked() != "1.0.0" || !cfg.Status.IsSkipped("2.0.0") {
		t.Fatalf("after manual rollback: %+v linked=%q", cfg.Status, e.linked())
	}

	// An admin install takes a version off the skip list.
	e.publish("3.0.1", false)
	if _, err := u.Install(ctx, InstallRequest{Version: "2.0.0"}); err != nil {
		t.Fatalf("reinstall 2.0.0: %v", err)
	}
	if cfg = e.config(); cfg.Status.IsSkipped("2.0.0") || cfg.Status.Active != "2.0.0" {
		t.Fatalf("admin install did not clear skip: %+v", cfg.Status)
	}

	// Uninstall leaves nothing of ours, and Teleport's data alone.
	agentData := filepath.Join(e.root, "var/lib/teleport/host_uuid")
	if err := os.MkdirAll(filepath.Dir(agentData), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(agentData, []byte("uuid"), 0o600); err != nil {
		t.Fatal(err)
	}
	removed, err := u.Uninstall(ctx, false)
	if err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if len(removed) == 0 {
		t.Fatal("uninstall removed nothing")
	}
	for _, p := range []string{"usr/local/bin/teleport", "usr/local/bin/tctl", "var/lib/teleport-update/versions/2.0.0", "var/lib/teleport-update/update.yaml"} {
		if _, err := os.Lstat(filepath.Join(e.root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after uninstall (%v)", p, err)
		}
	}
	if _, err := os.Stat(agentData); err != nil {
		t.Errorf("the agent's data was removed: %v", err)
	}
}

func TestVerificationFailureIsNotSkipped(t *testing.T) {
	e, u := installedHost(t, nil)
	ctx := context.Background()

	a := e.publish("2.0.0", false)
	e.tamper(a.TarballName(), func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	e.setTarget("2.0.0", true, 0)
	_, err := u.Update(ctx, false)
	if !errors.Is(err, verify.ErrVerification) {
		t.Fatalf("tampered tarball: got %v, want ErrVerification", err)
	}
	cfg := e.config()
	if cfg.Status.Active != "1.0.0" || e.linked() != "1.0.0" || cfg.Status.IsSkipped("2.0.0") {
		t.Fatalf("after failed verification: %+v linked=%q", cfg.Status, e.linked())
	}
	if lu := cfg.Status.LastUpdate; lu == nil || lu.Success || lu.ErrorCode != "verification" {
		t.Fatalf("last_update: %+v", lu)
	}
	if _, ok, _ := install.New(e.root).Installed("2.0.0"); ok {
		t.Fatal("unverified version reached versions/")
	}
	if left := e.stagingLeft(); len(left) > 0 {
		t.Fatalf("staging left behind: %v", left)
	}
	// Once the CDN serves the genuine file, the next run succeeds.
	e.publish("2.0.0", false)
	if res, err := u.Update(ctx, false); err != nil || res.Outcome != OutcomeUpdated {
		t.Fatalf("retry: %v %v", res, err)
	}
}

func TestDowngradeRule(t *testing.T) {
	e, u := installedHost(t, nil, pub{"0.9.0", false}, pub{"2.0.0", false})
	ctx := context.Background()
	e.setTarget("2.0.0", true, 0)
	if _, err := u.Update(ctx, false); err != nil {
		t.Fatal(err)
	}
	// 1.0.0 ran here before: the proxy may move the host back to it.
	e.setTarget("1.0.0", true, 0)
	if _, err := u.Update(ctx, false); err != nil {
		t.Fatalf("downgrade to a known-good version: %v", err)
	}
	// 0.9.0 never ran here: refused, and nothing is downloaded.
	e.setTarget("0.9.0", true, 0)
	_, err := u.Update(ctx, false)
	if !errors.Is(err, ErrDowngrade) {
		t.Fatalf("downgrade to unknown version: got %v, want ErrDowngrade", err)
	}
	if e.cdn.Hits(e.artifact("0.9.0").TarballName()) != 0 {
		t.Fatal("refused downgrade downloaded the tarball")
	}
	// The local admin can.
	if _, err := u.Pin(ctx, "0.9.0"); err != nil {
		t.Fatalf("pin 0.9.0: %v", err)
	}
	if got := e.config().Status.Active; got != "0.9.0" {
		t.Fatalf("after pin: active %s", got)
	}
}

func TestPinnedHostDoesNotFollowProxy(t *testing.T) {
	e, u := installedHost(t, nil, pub{"2.0.0", false})
	ctx := context.Background()
	if _, err := u.Pin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	e.setTarget("2.0.0", true, 0)
	calls := e.findCalls
	res, err := u.Update(ctx, true)
	if err != nil || res.Outcome != OutcomePinned {
		t.Fatalf("pinned update: %v %v", res, err)
	}
	if e.findCalls != calls || e.config().Status.Active != "1.0.0" {
		t.Fatal("pinned host followed the proxy")
	}
	if _, err := u.Unpin(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err = u.Update(ctx, false); err != nil || res.Outcome != OutcomeUpdated {
		t.Fatalf("after unpin: %v %v", res, err)
	}
}

func TestDisabledHostContactsNothing(t *testing.T) {
	e, u := installedHost(t, nil)
	if _, err := u.SetEnabled(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.setTarget("2.0.0", true, 0)
	calls, hits := e.findCalls, e.cdn.TotalHits()
	res, err := u.Update(context.Background(), true)
	if err != nil || res.Outcome != OutcomeDisabled {
		t.Fatalf("disabled update: %v %v", res, err)
	}
	if e.findCalls != calls || e.cdn.TotalHits() != hits {
		t.Fatal("a disabled host contacted the proxy or the CDN")
	}
}

func TestBadProxyAnswersChangeNothing(t *testing.T) {
	cases := []struct {
		name string
		code int
		raw  string
	}{
		{"503", http.StatusServiceUnavailable, ""},
		{"not json", 200, "<html>hello</html>"},
		{"no version", 200, `{"auto_update":{"agent_auto_update":true}}`},
		{"path in version", 200, `{"auto_update":{"agent_version":"../../etc/passwd","agent_auto_update":true}}`},
		{"v prefix", 200, `{"auto_update":{"agent_version":"v2.0.0","agent_auto_update":true}}`},
		{"negative jitter", 200, `{"auto_update":{"agent_version":"2.0.0","agent_auto_update":true,"agent_update_jitter_seconds":-5}}`},
		{"oversized", 200, `{"auto_update":{"agent_version":"2.0.0","x":"` + string(bytes.Repeat([]byte("a"), MaxFindResponseSize)) + `"}}`},
	}
	e, u := installedHost(t, nil, pub{"2.0.0", false})
	statePath := install.New(e.root).StatePath()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.mu.Lock()
			e.findCode, e.findRaw = tc.code, []byte(tc.raw)
			e.mu.Unlock()
			before, _ := os.ReadFile(statePath)
			hits := e.cdn.TotalHits()
			_, err := u.Update(context.Background(), true)
			if !errors.Is(err, ErrProxy) {
				t.Fatalf("got %v, want ErrProxy", err)
			}
			after, _ := os.ReadFile(statePath)
			if !bytes.Equal(before, after) {
				t.Errorf("update.yaml changed:\n%s\nbefore:\n%s", after, before)
			}
			if e.cdn.TotalHits() != hits {
				t.Errorf("the CDN was contacted")
			}
		})
	}
}

func TestJitter(t *testing.T) {
	e, u := installedHost(t, nil, pub{"2.0.0", false}, pub{"3.0.0", false})

	e.setTarget("2.0.0", true, 60)
	if _, err := u.Update(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if len(e.sleeps) != 1 || e.sleeps[0] < 0 || e.sleeps[0] >= 60e9 {
		t.Fatalf("jitter sleeps = %v, want one in [0, 60s)", e.sleeps)
	}
	// --now skips the jitter.
	e.setTarget("3.0.0", true, 60)
	if _, err := u.Update(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if len(e.sleeps) != 1 {
		t.Fatalf("--now slept: %v", e.sleeps)
	}
	// An interrupted jitter changes nothing.
	e.setTarget("2.0.0", true, 60)
	u.Sleep = func(ctx context.Context, _ time.Duration) error { return context.Canceled }
	if _, err := u.Update(context.Background(), false); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted jitter: %v", err)
	}
	if e.config().Status.Active != "3.0.0" {
		t.Fatal("interrupted jitter changed the active version")
	}
}

func TestFirstInstallRefusedWithoutKeys(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	e.publish("1.0.0", false)
	keyFile := filepath.Join(e.root, "etc/teleport-update/keys.d/test.pub")
	pub, _ := os.ReadFile(keyFile)
	os.Remove(keyFile)
	_, err := u.Install(context.Background(), InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL, Version: "1.0.0"})
	if !errors.Is(err, verify.ErrNoKeys) {
		t.Fatalf("install without any pinned key: %v, want verify.ErrNoKeys", err)
	}
	if n := e.cdn.Requests(); n != 0 {
		t.Errorf("install without any pinned key made %d CDN requests, want none", n)
	}
	cfg := e.config()
	if cfg.Status.Active != "" || e.linked() != "" {
		t.Fatalf("refused install left state: %+v", cfg.Status)
	}
	os.WriteFile(keyFile, pub, 0o644)
	if _, err := u.Install(context.Background(), InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL, Version: "1.0.0"}); err != nil {
		t.Fatalf("install after the cause is gone: %v", err)
	}
	if cfg := e.config(); cfg.Status.Active != "1.0.0" || cfg.Spec.Proxy != e.proxyAddr() {
		t.Fatalf("after install: %+v", cfg)
	}
}

func TestInterruptedSwitchIsRepaired(t *testing.T) {
	e, u := installedHost(t, nil, pub{"2.0.0", false})
	// Simulate a run killed after linking 2.0.0 but before update.yaml was
	// written, with a half-extracted version and staging left behind.
	tree := install.New(e.root)
	e.setTarget("2.0.0", true, 0)
	u2 := e.updater()
	u2.AfterStep = func(step Step) {
		if step == StepLink {
			panic("killed")
		}
	}
	func() {
		defer func() { recover() }()
		u2.Update(context.Background(), true)
	}()
	if e.linked() != "2.0.0" {
		t.Fatalf("setup: linked %q", e.linked())
	}
	os.MkdirAll(filepath.Join(tree.VersionDir("9.9.9"), "bin"), 0o755)
	staging, _ := tree.NewStaging()
	os.WriteFile(filepath.Join(staging, "partial"), []byte("x"), 0o600)

	// Status still tells the truth: 1.0.0 is what was committed.
	if got := e.config().Status.Active; got != "1.0.0" {
		t.Fatalf("update.yaml says %q", got)
	}
	e.setTarget("1.0.0", true, 0)
	if _, err := u.Update(context.Background(), true); err != nil {
		t.Fatalf("next run: %v", err)
	}
	if e.linked() != "1.0.0" {
		t.Fatalf("links not restored: %q", e.linked())
	}
	if _, err := os.Stat(tree.VersionDir("9.9.9")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("incomplete version dir left: %v", err)
	}
	if left := e.stagingLeft(); len(left) > 0 {
		t.Errorf("staging left: %v", left)
	}
}
