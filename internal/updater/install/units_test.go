package install

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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

func TestWriteUnits(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	// A pre-existing teleport.service (e.g. from a package) and nothing else.
	agent := filepath.Join(tr.UnitDir(), AgentUnit)
	mustWrite(t, agent, "[Service]\nExecStart=/usr/bin/teleport start\n")
	if err := os.Chmod(agent, 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, tr.UnitDir())

	o := UnitOptions{Version: "1.0.0"}
	revert, changed, err := tr.WriteUnits(o)
	if err != nil || !changed {
		t.Fatalf("WriteUnits() = changed %v, %v; want changed", changed, err)
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
