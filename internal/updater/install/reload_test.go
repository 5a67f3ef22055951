package install

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReadPIDFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, data string
		want       int
		ok         bool
	}{
		{"plain", "1234\n", 1234, true},
		{"no newline", "42", 42, true},
		{"spaces", " 7 \n", 7, true},
		{"empty", "", 0, false},
		{"zero", "0\n", 0, false},
		{"negative", "-5\n", 0, false},
		{"text", "pid 12\n", 0, false},
		{"two", "12\n13\n", 0, false},
		{"long", strings.Repeat("1", maxPIDFile+1), 0, false},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.data), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadPIDFile(p)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: ReadPIDFile(%q) = %d, %v; want %d, ok %v", tc.name, tc.data, got, err, tc.want, tc.ok)
		}
	}
	if got, err := ReadPIDFile(filepath.Join(dir, "missing")); got != 0 || err != nil {
		t.Errorf("missing file: %d, %v; want 0, nil", got, err)
	}
}

func TestServiceSection(t *testing.T) {
	t.Parallel()
	a := RenderAgentService(UnitOptions{Version: "1.0.0"})
	b := RenderAgentService(UnitOptions{Version: "2.0.0"})
	if !slices.Equal(ServiceSection(a), ServiceSection(b)) {
		t.Errorf("the agent's [Service] section depends on the version:\n%q\n%q", ServiceSection(a), ServiceSection(b))
	}
	if n := len(ServiceSection(a)); n < 5 {
		t.Errorf("[Service] section of the rendered unit has %d lines: %q", n, ServiceSection(a))
	}
	c := RenderAgentService(UnitOptions{Version: "1.0.0", AgentArgs: []string{"start", "--fips"}})
	if slices.Equal(ServiceSection(a), ServiceSection(c)) {
		t.Error("other agent arguments left the [Service] section unchanged")
	}
	unit := "[Unit]\nDescription=x\n[Service]\n# comment\n  ExecStart=/bin/a  \n\n[Install]\nWantedBy=y\n[Service]\nUser=z\n"
	if got, want := ServiceSection([]byte(unit)), []string{"ExecStart=/bin/a", "User=z"}; !slices.Equal(got, want) {
		t.Errorf("ServiceSection = %q, want %q", got, want)
	}
}

// procs is a hand-written process table: alive PIDs and the binary each runs.
type procs map[int]string

func (p procs) Alive(pid int) bool                { _, ok := p[pid]; return ok }
func (p procs) Exe(pid int) string                { return p[pid] }
func (p procs) Cmdline(pid int) ([]string, error) { return []string{p[pid]}, nil }

func TestReloadWatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldBin, newBin := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	for _, p := range []string{oldBin, newBin} {
		if err := os.WriteFile(p, []byte(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	active := func(main uint32) UnitState {
		return UnitState{ActiveState: "active", SubState: "running", MainPID: main, NRestarts: 1}
	}
	// look is one observation: the unit's state and the PID file, at a
	// time after the reload.
	type look struct {
		st  UnitState
		pid int
		at  time.Duration
	}
	t0 := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name    string
		procs   procs
		looks   []look
		healthy bool   // the last look ends the check with nil
		wantErr string // the last look ends it with this (wrapping ErrUnhealthy)
	}{
		{name: "new process stable while the old one drains", procs: procs{10: oldBin, 20: newBin},
			looks:   []look{{active(10), 10, 0}, {active(10), 20, time.Second}, {active(10), 20, 5 * time.Second}, {active(20), 20, 11 * time.Second}},
			healthy: true},
		{name: "not yet stable", procs: procs{10: oldBin, 20: newBin},
			looks: []look{{active(10), 20, 0}, {active(20), 20, 9 * time.Second}}},
		{name: "no takeover before the deadline", procs: procs{10: oldBin},
			looks:   []look{{active(10), 10, 0}, {active(10), 10, 61 * time.Second}},
			wantErr: "no new process took over from 10"},
		{name: "new process exits", procs: procs{10: oldBin},
			looks:   []look{{active(10), 20, time.Second}},
			wantErr: "the new process 20 exited"},
		{name: "new process runs the old binary", procs: procs{10: oldBin, 20: oldBin},
			looks:   []look{{active(10), 20, time.Second}},
			wantErr: "runs " + oldBin},
		{name: "PID file changes again", procs: procs{10: oldBin, 20: newBin, 30: newBin},
			looks:   []look{{active(10), 20, time.Second}, {active(20), 30, 2 * time.Second}},
			wantErr: "changed from the new process 20 to 30"},
		{name: "PID file goes back to the old process", procs: procs{10: oldBin, 20: newBin},
			looks:   []look{{active(10), 20, time.Second}, {active(10), 10, 2 * time.Second}},
			wantErr: "changed from the new process 20 to 10"},
		{name: "restarted by systemd", procs: procs{10: oldBin, 20: newBin},
			looks:   []look{{active(10), 20, time.Second}, {UnitState{ActiveState: "active", SubState: "running", MainPID: 20, NRestarts: 2}, 20, 2 * time.Second}},
			wantErr: "NRestarts 1 -> 2"},
		{name: "waiting to restart", procs: procs{10: oldBin},
			looks:   []look{{UnitState{ActiveState: "activating", SubState: "auto-restart", NRestarts: 1}, 20, time.Second}},
			wantErr: "waiting to restart"},
		{name: "failed", procs: procs{10: oldBin},
			looks:   []look{{UnitState{ActiveState: "failed", SubState: "failed", NRestarts: 1}, 0, time.Second}},
			wantErr: "unit is failed"},
		{name: "executable unreadable: the PID change counts", procs: procs{10: oldBin, 20: "/nonexistent/exe"},
			looks:   []look{{active(10), 20, time.Second}, {active(20), 20, 11 * time.Second}},
			healthy: true},
		{name: "main PID is a third process", procs: procs{10: oldBin, 20: newBin, 30: newBin},
			looks:   []look{{active(30), 20, time.Second}},
			wantErr: "main process is 30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := reloadWatch{
				ReloadCheck: ReloadCheck{Unit: AgentUnit, PIDFile: "/run/teleport.pid", Binary: newBin, Before: active(10), Procs: tc.procs},
				window:      10 * time.Second, deadline: t0.Add(60 * time.Second),
			}
			for i, l := range tc.looks {
				done, err := w.observe(l.st, l.pid, t0.Add(l.at))
				last := i == len(tc.looks)-1
				switch {
				case !last && (done || err != nil):
					t.Fatalf("look %d ended the check early: %v", i, err)
				case last && tc.wantErr != "":
					if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("last look: %v, want ErrUnhealthy with %q", err, tc.wantErr)
					}
				case last && (done != tc.healthy || err != nil):
					t.Fatalf("last look: done %v, %v; want done %v, nil", done, err, tc.healthy)
				}
			}
		})
	}
}

// ProcFS reads this very process, and sees a zombie as gone.
func TestProcFS(t *testing.T) {
	t.Parallel()
	var p ProcFS
	self := os.Getpid()
	if !p.Alive(self) {
		t.Error("this process is not alive")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if same, err := Runs(p, self, exe); err != nil || !same {
		t.Errorf("Runs(self, %s) = %v, %v; want true", exe, same, err)
	}
	if same, err := Runs(p, self, "/bin/sh"); err != nil || same {
		t.Errorf("Runs(self, /bin/sh) = %v, %v; want false", same, err)
	}
	if got, err := p.Cmdline(self); err != nil || !slices.Equal(got, os.Args) {
		t.Errorf("Cmdline(self) = %q, %v; want %q", got, err, os.Args)
	}
	// A child that exited and is not reaped yet is a zombie.
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(time.Minute); p.Alive(pid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the exited child %d still counts as alive", pid)
		}
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Errorf("the child %d was reaped before the check: %v", pid, err)
	}
	cmd.Wait()
}
