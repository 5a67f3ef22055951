package install

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxPIDFile caps how much of the PID file is read: a PID and a newline.
const maxPIDFile = 32

// PIDFile is <root>/run/teleport.pid (AgentPIDFile).
func (t *Tree) PIDFile() string { return t.path(strings.TrimPrefix(AgentPIDFile, "/")) }

// AgentExecStart returns the agent's command line as the unit written with
// o runs it (the link, the arguments, the PID file).
func AgentExecStart(o UnitOptions) []string { return agentExecStart(o.withDefaults()) }

// ReadPIDFile returns the PID in the file at path; 0 with no error when the
// file does not exist (the agent has not written it, or systemd removed it
// when the unit stopped). Anything but one positive decimal number is an
// error.
func ReadPIDFile(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read PID file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPIDFile+1))
	if err != nil {
		return 0, fmt.Errorf("read PID file %s: %w", path, err)
	}
	if len(b) > maxPIDFile {
		return 0, fmt.Errorf("read PID file %s: longer than %d bytes", path, maxPIDFile)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("read PID file %s: %q is not a PID", path, bytes.TrimSpace(b))
	}
	return pid, nil
}

// ServiceSection returns the [Service] lines of a unit file, trimmed, in
// order, without blank lines and comments. Two units with the same section
// run the agent the same way; a change there (the command line, its
// environment, limits, sandboxing) is what a reload cannot apply to a
// running process.
func ServiceSection(unit []byte) []string {
	var lines []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			in = line == "[Service]"
		case in:
			lines = append(lines, line)
		}
	}
	return lines
}

// Processes is what the health check after a reload reads about processes.
type Processes interface {
	// Alive reports whether pid runs (exists and is not a zombie).
	Alive(pid int) bool
	// Exe returns a path that stats as the executable pid runs.
	Exe(pid int) string
	// Cmdline returns pid's arguments, the program first.
	Cmdline(pid int) ([]string, error)
}

// ProcFS reads processes from /proc.
type ProcFS struct{}

func (ProcFS) Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may
	// itself hold parentheses: take the last one.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state != 'Z' && state != 'X' && state != 'x'
}

func (ProcFS) Exe(pid int) string { return fmt.Sprintf("/proc/%d/exe", pid) }

func (ProcFS) Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, fmt.Errorf("command line of %d: %w", pid, err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
}

// Runs reports whether pid runs the binary at bin. It fails when it cannot
// tell: reading another process's executable needs ptrace access, which a
// sandboxed updater (a reduced capability bounding set) may lack.
func Runs(p Processes, pid int, bin string) (bool, error) {
	a, err := os.Stat(p.Exe(pid))
	if err != nil {
		return false, fmt.Errorf("executable of process %d: %w", pid, err)
	}
	b, err := os.Stat(bin)
	if err != nil {
		return false, fmt.Errorf("executable of process %d: %w", pid, err)
	}
	return os.SameFile(a, b), nil
}

// ReloadCheck is what CheckReloadHealth needs besides systemd.
type ReloadCheck struct {
	Unit string
	// PIDFile is the agent's PID file (Tree.PIDFile).
	PIDFile string
	// Binary is the binary the new process must run (the new version's
	// bin/teleport).
	Binary string
	// Before is the unit's state before the reload.
	Before UnitState
	Procs  Processes
	// Log is told when the new process's executable cannot be read.
	Log *slog.Logger
}

// CheckReloadHealth watches a unit just reloaded until a new process took
// over and stayed healthy for Window: the PID file names a process other
// than the main process before the reload, that process runs Binary and
// keeps running under the same PID, the unit stays active without a
// restart by systemd, and systemd's main PID is the old process (still
// finishing its sessions) or the new one. It returns ErrUnhealthy, naming
// what it saw, as soon as one of these breaks, and when Max passes without
// a stable Window (including when no new process took over). A state query
// error is returned as is; ctx ending returns ctx's error.
func CheckReloadHealth(ctx context.Context, sd Systemd, c ReloadCheck, o HealthOptions) error {
	o = o.withDefaults()
	w := reloadWatch{ReloadCheck: c, window: o.Window, deadline: time.Now().Add(o.Max)}
	ticker := time.NewTicker(o.Poll)
	defer ticker.Stop()
	for {
		st, err := sd.State(ctx, c.Unit)
		if err != nil {
			return fmt.Errorf("health check of %s: %w", c.Unit, err)
		}
		pid, err := ReadPIDFile(c.PIDFile)
		if err != nil {
			return fmt.Errorf("health check of %s: %w: %w", c.Unit, ErrUnhealthy, err)
		}
		if done, err := w.observe(st, pid, time.Now()); done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("health check of %s: %w", c.Unit, ctx.Err())
		case <-ticker.C:
		}
	}
}

// reloadWatch is the state of CheckReloadHealth between two looks.
type reloadWatch struct {
	ReloadCheck
	window   time.Duration
	deadline time.Time
	newPID   int
	since    time.Time
	// exeUnknown: the new process's executable could not be read.
	exeUnknown bool
}

// observe takes one look at the unit and the PID file at now: done with a
// nil error when the new process has been healthy for the window.
func (w *reloadWatch) observe(st UnitState, pid int, now time.Time) (done bool, err error) {
	fail := func(format string, args ...any) (bool, error) {
		return true, fmt.Errorf("health check of %s after reload: %w: %s", w.Unit, ErrUnhealthy, fmt.Sprintf(format, args...))
	}
	old := int(w.Before.MainPID)
	switch {
	case st.ActiveState == "failed" || st.ActiveState == "inactive" || st.ActiveState == "deactivating":
		return fail("unit is %s (%s)", st.ActiveState, st.SubState)
	case st.SubState == "auto-restart":
		return fail("main process exited, unit is waiting to restart (%s)", st.ActiveState)
	case st.NRestarts != w.Before.NRestarts:
		return fail("restarted by systemd (NRestarts %d -> %d)", w.Before.NRestarts, st.NRestarts)
	case w.newPID != 0 && pid != w.newPID:
		return fail("the PID file changed from the new process %d to %d", w.newPID, pid)
	case pid != 0 && pid != old:
		if w.newPID == 0 {
			w.newPID, w.since = pid, now
		}
		if err := w.checkNew(st); err != nil {
			return true, err
		}
		if now.Sub(w.since) >= w.window {
			return true, nil
		}
	}
	if now.After(w.deadline) {
		if w.newPID == 0 {
			return fail("no new process took over from %d (PID file %s names %d)", old, w.PIDFile, pid)
		}
		return fail("not stable for %s", w.window)
	}
	return false, nil
}

// checkNew checks the process that took over.
func (w *reloadWatch) checkNew(st UnitState) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("health check of %s after reload: %w: %s", w.Unit, ErrUnhealthy, fmt.Sprintf(format, args...))
	}
	switch {
	case !w.Procs.Alive(w.newPID):
		return fail("the new process %d exited", w.newPID)
	case st.MainPID != w.Before.MainPID && int(st.MainPID) != w.newPID:
		return fail("systemd's main process is %d, neither the old %d nor the new %d", st.MainPID, w.Before.MainPID, w.newPID)
	case w.exeUnknown:
		return nil
	}
	same, err := Runs(w.Procs, w.newPID, w.Binary)
	switch {
	case err != nil && !w.Procs.Alive(w.newPID):
		return fail("the new process %d exited", w.newPID)
	case err != nil:
		w.exeUnknown = true
		if w.Log != nil {
			w.Log.Warn("Cannot read which binary the new agent process runs; checking its version by running the binary instead.", "pid", w.newPID, "error", err)
		}
	case !same:
		exe := w.Procs.Exe(w.newPID)
		if target, err := os.Readlink(exe); err == nil {
			exe = target // /proc/PID/exe names the binary
		}
		return fail("the new process %d runs %s, not %s", w.newPID, exe, filepath.Clean(w.Binary))
	}
	return nil
}
