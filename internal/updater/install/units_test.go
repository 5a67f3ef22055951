package install

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goldenfile "github.com/gravitational/teleport-update/internal/golden"
)

// golden compares got with testdata/<TestName>/<name>.golden.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", filepath.Dir(t.Name()), name+".golden"), got)
}

var unitCases = []struct {
	name string
	o    UnitOptions
}{
	{"defaults", UnitOptions{Version: "16.4.6"}},
	{"custom", UnitOptions{
		Version:         "17.0.0-rc.1",
		AgentArgs:       []string{"start", "--config", "/etc/teleport config/teleport.yaml", "--label=env=100%", "$HOME", `quote"back\slash`},
		UpdaterPath:     "/opt/teleport-update/bin/teleport-update",
		Interval:        90 * time.Second,
		RandomizedDelay: -1,
	}},
	{"written-by", UnitOptions{Version: "16.4.6", UpdaterVersion: "1.5.0"}},
	{"hourly", UnitOptions{Version: "16.4.6", Interval: time.Hour, RandomizedDelay: 10 * time.Minute}},
}

func TestRenderAgentService(t *testing.T) {
	for _, tc := range unitCases {
		t.Run(tc.name, func(t *testing.T) { golden(t, tc.name, RenderAgentService(tc.o)) })
	}
}

// TestRenderAgentServiceFIPS: a FIPS build's unit runs the agent with
// --fips after "start", as Teleport's own updater writes it, once.
func TestRenderAgentServiceFIPS(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    UnitOptions
	}{
		{"fips", UnitOptions{Version: "16.4.6", FIPS: true}},
		{"fips_custom_args", UnitOptions{Version: "16.4.6", FIPS: true, AgentArgs: []string{"start", "--roles=node", "--config", "/etc/teleport.yaml"}}},
		{"fips_given_already", UnitOptions{Version: "16.4.6", FIPS: true, AgentArgs: []string{"start", "--fips", "-c", "/etc/teleport.yaml"}}},
	} {
		t.Run(tc.name, func(t *testing.T) { golden(t, tc.name, RenderAgentService(tc.o)) })
	}
}

func TestRenderUpdaterService(t *testing.T) {
	for _, tc := range unitCases {
		t.Run(tc.name, func(t *testing.T) { golden(t, tc.name, RenderUpdaterService(tc.o)) })
	}
}

func TestRenderUpdaterTimer(t *testing.T) {
	for _, tc := range unitCases {
		t.Run(tc.name, func(t *testing.T) { golden(t, tc.name, RenderUpdaterTimer(tc.o)) })
	}
}

func TestUnitOptionsValidate(t *testing.T) {
	t.Parallel()
	bad := []UnitOptions{
		{Version: ""},
		{Version: "1.2.3\nExecStartPre=/bin/evil"},
		{Version: "1.2.3", AgentArgs: []string{"start", "x\nExecStartPre=/bin/evil"}},
		{Version: "1.2.3", UpdaterPath: "teleport-update"},
		{Version: "1.2.3", Interval: time.Millisecond},
		{Version: "1.2.3", UpdaterVersion: "1.5.0\nExecStartPre=/bin/evil"},
	}
	for _, o := range bad {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", o)
		}
	}
	if err := (UnitOptions{Version: "1.2.3"}).Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v", err)
	}
}

// TestWriteUpdaterUnits: setup's writer touches only the updater's units,
// names their writer, and leaves a unit that is not ours alone.
func TestWriteUpdaterUnits(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	agent := filepath.Join(tr.UnitDir(), AgentUnit)
	mustWrite(t, agent, "[Service]\nExecStart=/usr/bin/teleport start\n")
	changed, err := tr.WriteUpdaterUnits(UnitOptions{UpdaterVersion: "1.5.0"})
	if err != nil || !changed {
		t.Fatalf("WriteUpdaterUnits = %v, %v", changed, err)
	}
	for _, u := range []string{UpdaterUnit, UpdaterTimerUnit} {
		b, err := os.ReadFile(filepath.Join(tr.UnitDir(), u))
		if err != nil || !strings.Contains(string(b), "# Written by teleport-update 1.5.0.\n") {
			t.Errorf("%s: %v\n%s", u, err, b)
		}
	}
	if b, _ := os.ReadFile(agent); string(b) != "[Service]\nExecStart=/usr/bin/teleport start\n" {
		t.Errorf("the agent's unit changed: %s", b)
	}
	if changed, err := tr.WriteUpdaterUnits(UnitOptions{UpdaterVersion: "1.5.0"}); err != nil || changed {
		t.Errorf("writing the same units again: %v, %v", changed, err)
	}
	mustWrite(t, filepath.Join(tr.UnitDir(), UpdaterTimerUnit), "[Timer]\nOnCalendar=daily\n")
	if _, err := tr.WriteUpdaterUnits(UnitOptions{UpdaterVersion: "1.6.0"}); !errors.Is(err, ErrNotOurs) {
		t.Errorf("over an admin's timer: %v, want ErrNotOurs", err)
	}
}

func TestWriteUnits(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	// An admin's own teleport.service and nothing else.
	agent := filepath.Join(tr.UnitDir(), AgentUnit)
	admin := "[Service]\nUser=teleport\nExecStart=/usr/bin/teleport start\n"
	mustWrite(t, agent, admin)
	if err := os.Chmod(agent, 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, tr.UnitDir())

	// Without overwrite it is refused and nothing is written.
	o := UnitOptions{Version: "1.0.0"}
	if _, _, err := tr.WriteUnits(o); !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), agent) {
		t.Fatalf("WriteUnits() over an admin's unit = %v, want ErrNotOurs naming it", err)
	}
	if got := snapshot(t, tr.UnitDir()); len(got) != len(before) || got[AgentUnit] != before[AgentUnit] {
		t.Fatalf("refused WriteUnits changed the unit directory:\n%v", got)
	}

	revert, changed, err := tr.WriteUnitsOver(o, true)
	if err != nil || !changed {
		t.Fatalf("WriteUnitsOver(overwrite) = changed %v, %v; want changed", changed, err)
	}
	if b, err := os.ReadFile(filepath.Join(tr.UnitBackupDir(), AgentUnit)); err != nil || string(b) != admin {
		t.Errorf("admin's unit not kept: %q, %v", b, err)
	}
	for _, u := range unitFiles(o) {
		got, err := os.ReadFile(filepath.Join(tr.UnitDir(), u.name))
		if err != nil || !bytes.Equal(got, u.data) {
			t.Errorf("%s not written: %v", u.name, err)
		}
	}
	if _, changed, err := tr.WriteUnits(o); err != nil || changed {
		t.Errorf("second WriteUnits() = changed %v, %v; want unchanged", changed, err)
	}
	if err := revert(); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if got := snapshot(t, tr.UnitDir()); len(got) != len(before) || got[AgentUnit] != before[AgentUnit] {
		t.Errorf("after revert:\n%v\nwant:\n%v", got, before)
	}

	if _, _, err := tr.WriteUnits(UnitOptions{Version: "bad/version"}); !errors.Is(err, ErrInvalidVersion) {
		t.Errorf("WriteUnits(bad version) = %v, want ErrInvalidVersion", err)
	}
}

func TestRemoveUnits(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	if _, _, err := tr.WriteUnits(UnitOptions{Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	// An operator replaced the agent unit with their own.
	mustWrite(t, filepath.Join(tr.UnitDir(), AgentUnit), "[Service]\n")
	removed, err := tr.RemoveUnits()
	if !errors.Is(err, ErrNotOurs) {
		t.Errorf("RemoveUnits() error = %v, want ErrNotOurs for the foreign unit", err)
	}
	want := []string{filepath.Join(tr.UnitDir(), UpdaterUnit), filepath.Join(tr.UnitDir(), UpdaterTimerUnit)}
	if len(removed) != 2 || removed[0] != want[0] || removed[1] != want[1] {
		t.Errorf("RemoveUnits() removed %v, want %v", removed, want)
	}
	if _, err := os.Stat(filepath.Join(tr.UnitDir(), AgentUnit)); err != nil {
		t.Errorf("foreign unit removed: %v", err)
	}
}

func TestSystemdSpan(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0", 5 * time.Minute: "5min", 90 * time.Second: "90s", 2 * time.Hour: "2h", 1500 * time.Millisecond: "2s",
	} {
		if got := systemdSpan(d); got != want {
			t.Errorf("systemdSpan(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestHasSystemd(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	if tr.HasSystemd() {
		t.Error("HasSystemd() on an empty root")
	}
	if err := os.MkdirAll(filepath.Join(tr.Root, "run", "systemd", "system"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !tr.HasSystemd() {
		t.Error("HasSystemd() = false with run/systemd/system")
	}
}

// TestUnitBackupRestored: an admin's unit replaced with overwrite comes
// back, byte for byte, once our units are removed; its place taken, the
// backup stays.
func TestUnitBackupRestored(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	agent := filepath.Join(tr.UnitDir(), AgentUnit)
	admin := "[Service]\nUser=teleport\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nProtectSystem=strict\n"
	mustWrite(t, agent, admin)
	if _, _, err := tr.WriteUnitsOver(UnitOptions{Version: "1.0.0"}, true); err != nil {
		t.Fatal(err)
	}
	if restored, err := tr.RestoreUnitBackups(); err != nil || len(restored) != 0 {
		t.Fatalf("RestoreUnitBackups() with our unit in place = %v, %v; want nothing", restored, err)
	}
	if _, err := tr.RemoveUnits(); err != nil {
		t.Fatal(err)
	}
	restored, err := tr.RestoreUnitBackups()
	if err != nil || len(restored) != 1 || restored[0] != agent {
		t.Fatalf("RestoreUnitBackups() = %v, %v; want %s", restored, err, agent)
	}
	if b, _ := os.ReadFile(agent); string(b) != admin {
		t.Errorf("restored unit = %q, want %q", b, admin)
	}
	if _, err := os.Stat(tr.UnitBackupDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backup left after restore: %v", err)
	}
}
