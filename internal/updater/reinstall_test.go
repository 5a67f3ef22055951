package updater

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// finds is how many find requests the proxy answered.
func (e *testEnv) finds() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.findCalls
}

// Re-running install (config management, install.sh) on an installed host
// changes the settings it is given and nothing an admin set: a disabled
// host stays disabled and where it is, a pinned host stays at its pin, and
// a host that follows the proxy moves only as the timer would.
func TestReinstallHonoursHostSettings(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(t *testing.T, u *Updater)
		version string // install --version
		open    bool   // the proxy's window
		jitter  int    // the proxy's jitter, seconds
		// want
		active      string
		enabled     bool
		pinned      string // pinned_version, "" when not pinned
		askProxy    bool
		moveStarted bool // the timer is (re)started
	}{
		{name: "disabled", setup: disable, open: true, active: "1.0.0", enabled: false},
		{name: "pinned", setup: pin(""), open: true, active: "1.0.0", enabled: true, pinned: "1.0.0"},
		{name: "window closed", active: "1.0.0", enabled: true, askProxy: true},
		{name: "window open, jitter", open: true, jitter: 60, active: "1.0.0", enabled: true, askProxy: true},
		{name: "window open", open: true, active: "2.0.0", enabled: true, askProxy: true},
		// An admin naming a version gets it, and nothing else changes. The
		// proxy is asked which build (edition, FIPS) to install, as
		// Teleport's install does.
		{name: "disabled, --version", setup: disable, version: "2.0.0", active: "2.0.0", enabled: false, askProxy: true},
		{name: "pinned, --version", setup: pin(""), version: "2.0.0", active: "2.0.0", enabled: true, pinned: "2.0.0", askProxy: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, u, sd := newSystemdHost(t, pub{"2.0.0", false})
			if tc.setup != nil {
				tc.setup(t, u)
			}
			e.setTarget("2.0.0", tc.open, tc.jitter)
			// An earlier failed update, which a re-install that keeps the
			// version must not paper over.
			lastUpdate := &LastUpdate{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Target: "2.0.0", Error: "earlier failure", ErrorCode: "health_check"}
			before := e.config()
			before.Status.LastUpdate = lastUpdate
			mustDo(t, SaveConfig(install.New(e.root).StatePath(), before))
			finds := e.finds()
			sd.enabled, sd.calls = nil, nil
			token := "token-given-on-reinstall-0123456789"
			cfg, err := u.Install(context.Background(), InstallRequest{
				Proxy: e.proxyAddr(), Group: "production", Token: token, Version: tc.version,
			})
			if err != nil {
				t.Fatalf("re-install: %v", err)
			}
			saved := e.config()
			if saved.Status.Active != tc.active || e.linked() != tc.active || sd.running != tc.active {
				t.Errorf("active %q, linked %q, running %q; want %s", saved.Status.Active, e.linked(), sd.running, tc.active)
			}
			if saved.Spec.Enabled != tc.enabled {
				t.Errorf("enabled = %v, want %v", saved.Spec.Enabled, tc.enabled)
			}
			if saved.Spec.Pinned != (tc.pinned != "") || saved.Spec.PinnedVersion != tc.pinned {
				t.Errorf("pinned %v at %q, want %q", saved.Spec.Pinned, saved.Spec.PinnedVersion, tc.pinned)
			}
			if saved.Spec.Group != "production" || saved.Spec.Token != token || cfg.Spec.Group != "production" {
				t.Errorf("the new settings were not saved: %+v", saved.Spec)
			}
			if asked := e.finds() != finds; asked != tc.askProxy {
				t.Errorf("proxy asked = %v, want %v", asked, tc.askProxy)
			}
			timerOn := slices.Contains(sd.enabled, UpdaterTimerUnit) || slices.Contains(sd.calls, "start "+UpdaterTimerUnit)
			if timerOn != tc.enabled {
				t.Errorf("update timer enabled or started = %v, want %v (enabled %v, calls %v)", timerOn, tc.enabled, sd.enabled, sd.calls)
			}
			if kept := tc.version == "" && tc.active == "1.0.0"; kept && !reflect.DeepEqual(saved.Status.LastUpdate, lastUpdate) {
				t.Errorf("a re-install that kept the version rewrote last_update: %+v, was %+v", saved.Status.LastUpdate, lastUpdate)
			}
			if len(e.sleeps) != 0 {
				t.Errorf("install slept %v", e.sleeps)
			}
		})
	}
}

func disable(t *testing.T, u *Updater) {
	t.Helper()
	if _, err := u.SetEnabled(context.Background(), false); err != nil {
		t.Fatal(err)
	}
}

func pin(version string) func(t *testing.T, u *Updater) {
	return func(t *testing.T, u *Updater) {
		t.Helper()
		if _, err := u.Pin(context.Background(), version); err != nil {
			t.Fatal(err)
		}
	}
}

// A re-install that cannot ask the proxy with its new settings keeps the
// previous ones.
func TestReinstallKeepsSettingsWhenProxyFails(t *testing.T) {
	e, u := installedHost(t, nil)
	e.mu.Lock()
	e.findCode = http.StatusServiceUnavailable
	e.mu.Unlock()
	_, err := u.Install(context.Background(), InstallRequest{Proxy: e.proxyAddr(), Group: "production"})
	if !errors.Is(err, ErrProxy) {
		t.Fatalf("re-install with the proxy down: %v, want ErrProxy", err)
	}
	if cfg := e.config(); cfg.Spec.Group != "staging" || cfg.Status.Active != "1.0.0" {
		t.Fatalf("after a failed re-install: %+v", cfg)
	}
}
