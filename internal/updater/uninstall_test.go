package updater

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// TestUninstallRefusesActiveAgent: uninstall leaves a running or enabled
// agent alone unless forced.
func TestUninstallRefusesActiveAgent(t *testing.T) {
	tests := []struct {
		name             string
		running, enabled bool
	}{
		{"active", true, false},
		{"enabled", false, true},
		{"active and enabled", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, u, sd := newSystemdHost(t)
			if !tc.running {
				sd.running = ""
			}
			if tc.enabled {
				wants := filepath.Join(e.root, "etc/systemd/system/multi-user.target.wants")
				os.MkdirAll(wants, 0o755)
				if err := os.Symlink("../teleport.service", filepath.Join(wants, AgentUnit)); err != nil {
					t.Fatal(err)
				}
			}
			removed, err := u.Uninstall(context.Background(), false)
			if !errors.Is(err, ErrAgentActive) || !strings.Contains(err.Error(), "is "+tc.name) || len(removed) > 0 {
				t.Fatalf("Uninstall() = %v, %v; want ErrAgentActive saying %q", removed, err, tc.name)
			}
			if e.linked() != "1.0.0" || slices.Contains(sd.calls, "stop "+AgentUnit) {
				t.Fatalf("refused uninstall changed the host: linked %q, calls %v", e.linked(), sd.calls)
			}
			if _, err := u.Uninstall(context.Background(), true); err != nil {
				t.Fatalf("Uninstall(force): %v", err)
			}
			if e.linked() != "" || sd.running != "" {
				t.Fatalf("forced uninstall: linked %q, running %q", e.linked(), sd.running)
			}
			if _, err := os.Stat(filepath.Join(e.root, "var/lib/teleport-update")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data directory left: %v", err)
			}
		})
	}
}

// TestUninstallHandsBackToPackage: with a package install of Teleport on
// the host, uninstall leaves it enabled and started as our agent was.
func TestUninstallHandsBackToPackage(t *testing.T) {
	for _, running := range []bool{true, false} {
		t.Run(map[bool]string{true: "running", false: "stopped"}[running], func(t *testing.T) {
			e := newTestEnv(t)
			u := e.updater()
			sd := withSystemd(e, u)
			pkgUnit := filepath.Join(e.root, "lib/systemd/system", AgentUnit)
			os.MkdirAll(filepath.Dir(pkgUnit), 0o755)
			os.MkdirAll(filepath.Join(e.root, "usr/bin"), 0o755)
			os.WriteFile(pkgUnit, []byte("[Service]\nExecStart=/usr/bin/teleport start\n"), 0o644)
			os.WriteFile(filepath.Join(e.root, "usr/bin/teleport"), []byte("#!/bin/sh\n"), 0o755)
			e.publish("1.0.0", false)
			e.install(u, "1.0.0")
			if !running {
				sd.running = ""
			}
			sd.calls, sd.enabled = nil, nil
			if _, err := u.Uninstall(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			reload := slices.Index(sd.calls, "reload")
			start := slices.Index(sd.calls, "start "+AgentUnit)
			if running != (start > reload && reload >= 0) {
				t.Errorf("running %v: calls %v; want the packaged unit started after the reload only when ours ran", running, sd.calls)
			}
			if _, err := os.Stat(filepath.Join(e.root, "etc/systemd/system", AgentUnit)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("our unit still shadows the packaged one: %v", err)
			}
			if b, _ := os.ReadFile(pkgUnit); !strings.Contains(string(b), "/usr/bin/teleport") {
				t.Errorf("packaged unit changed: %q", b)
			}
		})
	}
}

// TestInstallKeepsAdminUnit: an admin's own teleport.service stops a
// first install (without skip-listing the version) unless overwrite; an
// overwritten one comes back with uninstall.
func TestInstallKeepsAdminUnit(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	sd := withSystemd(e, u)
	unit := filepath.Join(e.root, "etc/systemd/system", AgentUnit)
	admin := "[Service]\nUser=teleport\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nExecStart=/usr/local/bin/teleport start\n"
	os.MkdirAll(filepath.Dir(unit), 0o755)
	os.WriteFile(unit, []byte(admin), 0o644)
	e.publish("1.0.0", false)
	req := InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL, Version: "1.0.0"}
	cfg, err := u.Install(context.Background(), req)
	if !errors.Is(err, install.ErrNotOurs) || !strings.Contains(err.Error(), unit) {
		t.Fatalf("install over an admin's unit = %v, want ErrNotOurs naming %s", err, unit)
	}
	if b, _ := os.ReadFile(unit); string(b) != admin {
		t.Fatalf("admin's unit changed by a refused install: %q", b)
	}
	if cfg != nil && cfg.Status.IsSkipped("1.0.0") {
		t.Fatalf("1.0.0 skip-listed for an admin's unit: %+v", cfg.Status)
	}
	req.Overwrite = true
	if _, err := u.Install(context.Background(), req); err != nil {
		t.Fatalf("install --overwrite: %v", err)
	}
	if b, _ := os.ReadFile(unit); !strings.Contains(string(b), "Managed by teleport-update") {
		t.Fatalf("unit not replaced with overwrite: %q", b)
	}
	sd.running = ""
	os.RemoveAll(filepath.Join(e.root, "etc/systemd/system/multi-user.target.wants"))
	if _, err := u.Uninstall(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(unit); string(b) != admin {
		t.Fatalf("uninstall did not restore the admin's unit: %q", b)
	}
}
