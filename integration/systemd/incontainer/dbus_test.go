// Package incontainer holds tests that run inside a systemd container booted
// by the real-systemd suite (integration/systemd): it builds them with
// `go test -c`, copies the binary in and runs it with
// TELEPORT_UPDATE_IN_CONTAINER=1. Anywhere else every test skips, so they
// never touch the host's service manager.
package incontainer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// Bounds for the waits below; a passing run never reaches them.
const (
	opTimeout   = 30 * time.Second
	waitTimeout = 30 * time.Second
	pollEvery   = 50 * time.Millisecond
)

const unitDir = "/etc/systemd/system"

// inContainer skips the test unless it runs inside the suite's container.
func inContainer(t *testing.T) {
	t.Helper()
	if os.Getenv("TELEPORT_UPDATE_IN_CONTAINER") != "1" {
		t.Skip("runs only inside the real-systemd suite's container (TELEPORT_UPDATE_IN_CONTAINER=1)")
	}
	if _, err := os.Stat("/run/systemd/container"); err != nil {
		t.Skip("TELEPORT_UPDATE_IN_CONTAINER=1 but this is not a container (no /run/systemd/container); refusing to touch this systemd")
	}
}

// connect returns a D-Bus connection to systemd through install.NewDBus.
func connect(t *testing.T) install.Systemd {
	t.Helper()
	sd, err := install.NewDBus(t.Context())
	if err != nil {
		t.Fatalf("NewDBus: %v", err)
	}
	t.Cleanup(sd.Close)
	return sd
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// writeUnit writes a unit file and registers its removal.
func writeUnit(t *testing.T, sd install.Systemd, name, body string) {
	t.Helper()
	p := filepath.Join(unitDir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		_ = sd.Stop(ctx, name)
		_ = sd.ResetFailed(ctx, name)
		os.Remove(p)
		_ = sd.DaemonReload(ctx)
	})
}

func state(t *testing.T, sd install.Systemd, unit string) install.UnitState {
	t.Helper()
	st, err := sd.State(ctxT(t), unit)
	if err != nil {
		t.Fatalf("State(%s): %v", unit, err)
	}
	return st
}

// waitState polls the unit until cond holds and returns that state.
func waitState(t *testing.T, sd install.Systemd, unit, what string, cond func(install.UnitState) bool) install.UnitState {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st := state(t, sd, unit)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become %s within %v; last state %+v", unit, what, waitTimeout, st)
		}
		time.Sleep(pollEvery)
	}
}

const goodUnit = `[Unit]
Description=test unit that runs until stopped

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
`

// failingUnit exits 1 at once and is restarted quickly until systemd's start
// limit stops it: the pattern of a broken agent release.
const failingUnit = `[Unit]
Description=test unit that fails at start
StartLimitIntervalSec=60
StartLimitBurst=3

[Service]
ExecStart=/bin/false
Restart=on-failure
RestartSec=100ms
`

func TestDBusStartRestartStop(t *testing.T) {
	inContainer(t)
	sd := connect(t)
	const unit = "tu-lifecycle.service"
	writeUnit(t, sd, unit, goodUnit)
	if err := sd.DaemonReload(ctxT(t)); err != nil {
		t.Fatalf("DaemonReload: %v", err)
	}
	if st := state(t, sd, unit); st.ActiveState != "inactive" || st.MainPID != 0 {
		t.Fatalf("before Start: %+v, want inactive with no MainPID", st)
	}

	if err := sd.Start(ctxT(t), unit); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := state(t, sd, unit)
	if st.ActiveState != "active" || st.SubState != "running" || st.MainPID == 0 || st.NRestarts != 0 {
		t.Fatalf("after Start: %+v, want active/running with a MainPID and no restarts", st)
	}
	comm, err := os.ReadFile(filepathProc(st.MainPID, "comm"))
	if err != nil || strings.TrimSpace(string(comm)) != "sleep" {
		t.Errorf("MainPID %d is %q (%v), want the unit's sleep", st.MainPID, comm, err)
	}

	if err := sd.Restart(ctxT(t), unit); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	st2 := state(t, sd, unit)
	if st2.ActiveState != "active" || st2.MainPID == 0 || st2.MainPID == st.MainPID {
		t.Fatalf("after Restart: %+v, want active with a new MainPID (was %d)", st2, st.MainPID)
	}

	if err := sd.Stop(ctxT(t), unit); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st := state(t, sd, unit); st.ActiveState != "inactive" || st.MainPID != 0 {
		t.Fatalf("after Stop: %+v, want inactive with no MainPID", st)
	}
}

func filepathProc(pid uint32, file string) string {
	return filepath.Join("/proc", strconv.FormatUint(uint64(pid), 10), file)
}

func TestDBusUnknownUnit(t *testing.T) {
	inContainer(t)
	sd := connect(t)
	const unit = "tu-does-not-exist.service"
	st := state(t, sd, unit)
	if st.ActiveState != "inactive" || st.MainPID != 0 || st.LoadState != "not-found" || st.UnitFileState != "" {
		t.Errorf("State(unknown) = %+v, want inactive, not-found, no unit file state, no MainPID", st)
	}
	if err := sd.ResetFailed(ctxT(t), unit); err != nil {
		t.Errorf("ResetFailed(unknown) = %v, want nil", err)
	}
	if err := sd.Start(ctxT(t), unit); err == nil {
		t.Error("Start(unknown) succeeded")
	}
}

// TestDBusFailingUnitNeedsResetFailed walks the rollback path against real
// systemd: a unit whose binary exits 1 loops until the start limit, a
// restart is then refused, and after ResetFailed and a fixed ExecStart the
// restart brings it up.
func TestDBusFailingUnitNeedsResetFailed(t *testing.T) {
	inContainer(t)
	sd := connect(t)
	const unit = "tu-failing.service"
	writeUnit(t, sd, unit, failingUnit)
	if err := sd.DaemonReload(ctxT(t)); err != nil {
		t.Fatalf("DaemonReload: %v", err)
	}

	// "Restart job done" is not health: the job may well succeed.
	restartErr := sd.Restart(ctxT(t), unit)
	t.Logf("Restart of the failing unit returned %v.", restartErr)
	st := waitState(t, sd, unit, "failed after its restarts", func(s install.UnitState) bool {
		return s.ActiveState == "failed"
	})
	if st.NRestarts < 2 || st.MainPID != 0 {
		t.Errorf("failed unit: %+v, want at least 2 automatic restarts and no MainPID", st)
	}

	// At the start limit, a restart is refused until reset-failed.
	if err := sd.Restart(ctxT(t), unit); !errors.Is(err, install.ErrJobFailed) {
		t.Errorf("Restart at the start limit = %v, want ErrJobFailed", err)
	}

	// Roll back: fix the unit, reload, reset-failed, restart.
	writeUnit(t, sd, unit, goodUnit)
	if err := sd.DaemonReload(ctxT(t)); err != nil {
		t.Fatalf("DaemonReload: %v", err)
	}
	if err := sd.ResetFailed(ctxT(t), unit); err != nil {
		t.Fatalf("ResetFailed: %v", err)
	}
	if st := state(t, sd, unit); st.ActiveState == "failed" {
		t.Fatalf("after ResetFailed: still failed: %+v", st)
	}
	if err := sd.Restart(ctxT(t), unit); err != nil {
		t.Fatalf("Restart after ResetFailed: %v", err)
	}
	if st := state(t, sd, unit); st.ActiveState != "active" || st.MainPID == 0 || st.NRestarts != 0 {
		t.Errorf("after rollback: %+v, want active with a MainPID and NRestarts reset to 0", st)
	}
}

func TestDBusEnableDisable(t *testing.T) {
	inContainer(t)
	sd := connect(t)
	const unit = "tu-enable.service"
	writeUnit(t, sd, unit, goodUnit)
	if err := sd.DaemonReload(ctxT(t)); err != nil {
		t.Fatalf("DaemonReload: %v", err)
	}
	link := filepath.Join(unitDir, "multi-user.target.wants", unit)
	if err := sd.Enable(ctxT(t), unit); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	if target, err := os.Readlink(link); err != nil || target != filepath.Join(unitDir, unit) {
		t.Errorf("after Enable: %s -> %q (%v), want a link to %s", link, target, err, filepath.Join(unitDir, unit))
	}
	if err := sd.DaemonReload(ctxT(t)); err != nil {
		t.Fatalf("DaemonReload: %v", err)
	}
	if st := state(t, sd, unit); st.ActiveState != "inactive" || st.LoadState != "loaded" || st.UnitFileState != "enabled" {
		t.Errorf("after Enable and a reload: %+v, want inactive, loaded, enabled", st)
	}
	if err := sd.Disable(ctxT(t), unit); err != nil {
		t.Fatalf("Disable: %v", err)
	}
	if err := sd.DaemonReload(ctxT(t)); err != nil {
		t.Fatalf("DaemonReload: %v", err)
	}
	if st := state(t, sd, unit); st.UnitFileState != "disabled" {
		t.Errorf("after Disable and a reload: %+v, want disabled", st)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Disable: %s still exists (%v)", link, err)
	}
}

// TestCheckUnitHealth runs the updater's health check against real units:
// a healthy one passes; one that exits at start and one that crashes a
// second after starting are reported unhealthy within the window.
func TestCheckUnitHealth(t *testing.T) {
	inContainer(t)
	tests := []struct {
		name, unit, body string
		wantErr          error
	}{
		{name: "healthy", unit: "tu-health-ok.service", body: goodUnit},
		{name: "exits at start", unit: "tu-health-exit.service", body: failingUnit, wantErr: install.ErrUnhealthy},
		{name: "crashes after a second", unit: "tu-health-crash.service", wantErr: install.ErrUnhealthy,
			body: "[Service]\nExecStart=/bin/sh -c 'sleep 1; exit 1'\nRestart=on-failure\nRestartSec=100ms\n"},
		{name: "stops cleanly after a second", unit: "tu-health-stop.service", wantErr: install.ErrUnhealthy,
			body: "[Service]\nExecStart=/bin/sleep 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sd := connect(t)
			writeUnit(t, sd, tt.unit, tt.body)
			if err := sd.DaemonReload(ctxT(t)); err != nil {
				t.Fatalf("DaemonReload: %v", err)
			}
			if err := sd.Restart(ctxT(t), tt.unit); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			err := install.CheckUnitHealth(ctxT(t), sd, tt.unit, install.HealthOptions{
				Window: 3 * time.Second, Max: 20 * time.Second, Poll: 100 * time.Millisecond,
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("CheckUnitHealth = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestDBusOutlivesConnectContext checks the connection stays usable after
// the context it was made with ends: a run that is being stopped still goes
// back over it.
func TestDBusOutlivesConnectContext(t *testing.T) {
	inContainer(t)
	ctx, cancel := context.WithCancel(context.Background())
	sd, err := install.NewDBus(ctx)
	if err != nil {
		t.Fatalf("NewDBus: %v", err)
	}
	defer sd.Close()
	cancel()
	if err := sd.DaemonReload(ctxT(t)); err != nil {
		t.Fatalf("daemon-reload after the connect context ended: %v", err)
	}
	if down, err := sd.ShuttingDown(ctxT(t)); err != nil || down {
		t.Fatalf("ShuttingDown on a running system = %v, %v; want false", down, err)
	}
	sd.Close()
	if err := sd.DaemonReload(ctxT(t)); err == nil {
		t.Fatal("daemon-reload after Close succeeded")
	}
	if _, err := install.NewDBus(ctx); err == nil {
		t.Fatal("NewDBus with an ended context succeeded")
	}
}
