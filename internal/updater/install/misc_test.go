package install

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAcquireLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "var", "lib", "teleport-update", "update.lock")
	release, err := AcquireLock(t.Context(), path, 0)
	if err != nil {
		t.Fatalf("first AcquireLock: %v", err)
	}

	_, err = AcquireLock(t.Context(), path, 20*time.Millisecond)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second AcquireLock = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("ErrLocked message %q does not name the holder's pid", err)
	}
	if _, err := AcquireLock(t.Context(), path, 0); !errors.Is(err, ErrLocked) {
		t.Errorf("AcquireLock(wait 0) = %v, want ErrLocked", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := AcquireLock(ctx, path, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("AcquireLock(wait forever, canceled ctx) = %v, want context.Canceled", err)
	}

	if err := release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	release2, err := AcquireLock(t.Context(), path, -1)
	if err != nil {
		t.Fatalf("AcquireLock after release: %v", err)
	}
	if err := release2(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "update.yaml")
	for i, body := range []string{"first\n", "second, longer\n"} {
		if err := WriteFileAtomic(p, []byte(body), 0o640); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != body {
			t.Errorf("write %d: read %q, %v; want %q", i, got, err, body)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("write %d: mode %v, want 0640", i, fi.Mode().Perm())
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("write %d: directory holds %v, want only update.yaml", i, entries)
		}
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil, 0o644); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// writeScript creates an executable shell script.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "teleport")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckExec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		script  string
		wantErr error
	}{
		{"good", `echo "Teleport v1.2.3 git:x go1.26"`, nil},
		{"good on stderr", `echo "Teleport v1.2.3 git:x" >&2`, nil},
		{"wrong version", `echo "Teleport v1.2.4 git:x"`, ErrUnhealthy},
		{"longer version", `echo "Teleport v1.2.30 git:x"`, ErrUnhealthy},
		{"exit non-zero", `echo "Teleport v1.2.3 git:x"; exit 3`, ErrUnhealthy},
		{"no output", `exit 0`, ErrUnhealthy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckExec(t.Context(), writeScript(t, tc.script), "1.2.3")
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("CheckExec() = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if err := CheckExec(t.Context(), filepath.Join(t.TempDir(), "missing"), "1.2.3"); !errors.Is(err, ErrUnhealthy) {
		t.Errorf("CheckExec(missing binary) = %v, want ErrUnhealthy", err)
	}
}

// fakeSystemd replays a sequence of states; the last one repeats.
type fakeSystemd struct {
	states []UnitState
	err    error
	calls  int
}

func (f *fakeSystemd) State(ctx context.Context, unit string) (UnitState, error) {
	if f.err != nil {
		return UnitState{}, f.err
	}
	st := f.states[min(f.calls, len(f.states)-1)]
	f.calls++
	return st, nil
}
func (f *fakeSystemd) ShuttingDown(context.Context) (bool, error) { return false, nil }
func (f *fakeSystemd) DaemonReload(context.Context) error         { return nil }
func (f *fakeSystemd) Start(context.Context, string) error        { return nil }
func (f *fakeSystemd) Restart(context.Context, string) error      { return nil }
func (f *fakeSystemd) Reload(context.Context, string) error       { return nil }
func (f *fakeSystemd) Stop(context.Context, string) error         { return nil }
func (f *fakeSystemd) ResetFailed(context.Context, string) error  { return nil }
func (f *fakeSystemd) Enable(context.Context, ...string) error    { return nil }
func (f *fakeSystemd) Disable(context.Context, ...string) error   { return nil }
func (f *fakeSystemd) Close()                                     {}

var _ Systemd = (*fakeSystemd)(nil)

func TestCheckUnitHealth(t *testing.T) {
	t.Parallel()
	running := func(pid, restarts uint32) UnitState {
		return UnitState{ActiveState: "active", SubState: "running", MainPID: pid, NRestarts: restarts}
	}
	activating := UnitState{ActiveState: "activating", SubState: "start"}
	tests := []struct {
		name    string
		states  []UnitState
		wantErr error
		wantMsg string
	}{
		{"stable", []UnitState{running(10, 0)}, nil, ""},
		{"activating then stable", []UnitState{activating, activating, running(10, 0)}, nil, ""},
		{"restarted", []UnitState{running(10, 0), running(11, 1)}, ErrUnhealthy, "NRestarts 0 -> 1"},
		{"main pid changed", []UnitState{running(10, 0), running(12, 0)}, ErrUnhealthy, "from 10 to 12"},
		{"failed", []UnitState{running(10, 0), {ActiveState: "failed", SubState: "failed"}}, ErrUnhealthy, "failed"},
		{"inactive", []UnitState{{ActiveState: "inactive", SubState: "dead"}}, ErrUnhealthy, "inactive"},
		{"waiting to restart", []UnitState{{ActiveState: "activating", SubState: "auto-restart", NRestarts: 0}}, ErrUnhealthy, "waiting to restart"},
		{"never stable", []UnitState{activating}, ErrUnhealthy, "not stable"},
		{"active without pid", []UnitState{{ActiveState: "active", SubState: "exited"}}, ErrUnhealthy, "not stable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sd := &fakeSystemd{states: tc.states}
			o := HealthOptions{Window: 5 * time.Millisecond, Max: 50 * time.Millisecond, Poll: time.Millisecond}
			if tc.wantErr == nil {
				o.Max = time.Minute // a healthy unit must pass however slow the machine
			}
			err := CheckUnitHealth(t.Context(), sd, "teleport.service", o)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("CheckUnitHealth() = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("CheckUnitHealth() = %q, want it to mention %q", err, tc.wantMsg)
			}
		})
	}

	queryErr := errors.New("bus gone")
	if err := CheckUnitHealth(t.Context(), &fakeSystemd{err: queryErr}, "teleport.service", HealthOptions{}); !errors.Is(err, queryErr) {
		t.Errorf("CheckUnitHealth(query error) = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := CheckUnitHealth(ctx, &fakeSystemd{states: []UnitState{activating}}, "teleport.service", HealthOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("CheckUnitHealth(canceled) = %v, want context.Canceled", err)
	}
}

func TestTreePaths(t *testing.T) {
	t.Parallel()
	tr := New("/r")
	for got, want := range map[string]string{
		tr.DataDir():       "/r/var/lib/teleport-update",
		tr.VersionsDir():   "/r/var/lib/teleport-update/versions",
		tr.StatePath():     "/r/var/lib/teleport-update/update.yaml",
		tr.LockPath():      "/r/var/lib/teleport-update/update.lock",
		tr.BinDir():        "/r/usr/local/bin",
		tr.UpdaterPath():   "/r/usr/local/bin/teleport-update",
		tr.UnitDir():       "/r/etc/systemd/system",
		DefaultUpdaterPath: "/usr/local/bin/teleport-update",
	} {
		if got != want {
			t.Errorf("path %q, want %q", got, want)
		}
	}
}
