package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/releasetest"
)

// waitLimit only bounds how long a broken agent makes these tests hang;
// a passing run never waits for it.
const waitLimit = time.Minute

// runningAgent is the test agent started by a test as systemd would: by
// its link, with --pid-file, serving on a TCP port.
type runningAgent struct {
	t       *testing.T
	dir     string
	link    string
	pidFile string
	addr    string
	cmd     *exec.Cmd
	lines   chan string // its stdout and stderr, line by line
}

// buildAgents builds the test agent for each version and mode into dir.
func buildAgents(t *testing.T, dir string, agents ...releasetest.Agent) {
	t.Helper()
	for _, a := range agents {
		if _, err := a.Build(t.Context(), dir); err != nil {
			t.Fatal(err)
		}
	}
}

func startAgent(t *testing.T, dir, first string) *runningAgent {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	a := &runningAgent{t: t, dir: dir, link: filepath.Join(dir, "teleport"), pidFile: filepath.Join(dir, "teleport.pid"), addr: addr, lines: make(chan string, 1000)}
	a.relink(first)
	a.cmd = exec.Command(a.link, "start", "--config", "/etc/teleport.yaml", "--pid-file="+a.pidFile)
	a.cmd.Env = append(os.Environ(), listenEnv+"="+addr)
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	a.cmd.Stderr = a.cmd.Stdout
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
	}()
	t.Cleanup(func() {
		if pid, err := a.readPID(); err == nil {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		a.cmd.Process.Kill()
		a.cmd.Wait()
	})
	a.waitFor(func() bool { pid, _ := a.readPID(); return pid == a.cmd.Process.Pid }, "the PID file")
	return a
}

// relink points the agent's link at binary (relative to dir), as the
// updater does.
func (a *runningAgent) relink(binary string) {
	tmp := a.link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(binary, tmp); err != nil {
		a.t.Fatal(err)
	}
	if err := os.Rename(tmp, a.link); err != nil {
		a.t.Fatal(err)
	}
}

func (a *runningAgent) readPID() (int, error) {
	b, err := os.ReadFile(a.pidFile)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func (a *runningAgent) waitFor(cond func() bool, what string) {
	a.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			a.t.Fatalf("Timed out waiting for %s.", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLine waits for a line of the agent's output containing s.
func (a *runningAgent) waitLine(s string) string {
	a.t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				a.t.Fatalf("agent output ended before a line with %q", s)
			}
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			a.t.Fatalf("Timed out waiting for a line with %q.", s)
		}
	}
}

// session is a client connection to the agent.
type session struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (a *runningAgent) dial() (*session, string) {
	a.t.Helper()
	c, err := net.Dial("tcp", a.addr)
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { c.Close() })
	s := &session{t: a.t, c: c, r: bufio.NewReader(c)}
	return s, s.read()
}

func (s *session) read() string {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(waitLimit))
	line, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("reading from the agent: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

func (s *session) ask(q string) string {
	s.t.Helper()
	if _, err := fmt.Fprintln(s.c, q); err != nil {
		s.t.Fatalf("writing to the agent: %v", err)
	}
	return s.read()
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// On SIGHUP the agent hands over to the binary its link now points at: the
// new process takes the listener and the PID file, the old one keeps
// serving its open connection, and exits when that closes.
func TestHandoverToNewBinary(t *testing.T) {
	dir := t.TempDir()
	buildAgents(t, dir, releasetest.Agent{Version: "1.0.0", Mode: releasetest.ModeOK}, releasetest.Agent{Version: "2.0.0", Mode: releasetest.ModeOK})
	a := startAgent(t, dir, releasetest.BinaryName("1.0.0", releasetest.ModeOK))
	old := a.cmd.Process.Pid
	s1, hello := a.dial()
	if want := fmt.Sprintf("Teleport v1.0.0 pid %d", old); hello != want {
		t.Fatalf("greeting %q, want %q", hello, want)
	}

	a.relink(releasetest.BinaryName("2.0.0", releasetest.ModeOK))
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLine("draining 1 open connection")
	pid, err := a.readPID()
	if err != nil || pid == old || !alive(pid) {
		t.Fatalf("PID file after the handover: %d, %v; want a new live process", pid, err)
	}
	_, hello2 := a.dial()
	if want := fmt.Sprintf("Teleport v2.0.0 pid %d", pid); hello2 != want {
		t.Errorf("a new connection is greeted %q, want %q", hello2, want)
	}
	if got, want := s1.ask("still there?"), fmt.Sprintf("v1.0.0 pid %d: still there?", old); got != want {
		t.Errorf("the open connection answers %q, want %q", got, want)
	}
	s1.c.Close()
	a.waitLine("drained; exiting")
	if err := a.cmd.Wait(); err != nil {
		t.Errorf("the old process exited with %v, want 0", err)
	}
	if !alive(pid) {
		t.Errorf("the new process %d died with the old one", pid)
	}
}

// A new binary that fails at start never takes over: the old process
// keeps the listener, the PID file and its connections.
func TestHandoverToBrokenBinaryKeepsServing(t *testing.T) {
	dir := t.TempDir()
	buildAgents(t, dir, releasetest.Agent{Version: "1.0.0", Mode: releasetest.ModeOK}, releasetest.Agent{Version: "3.0.0", Mode: releasetest.ModeExit})
	a := startAgent(t, dir, releasetest.BinaryName("1.0.0", releasetest.ModeOK))
	old := a.cmd.Process.Pid
	s1, _ := a.dial()

	a.relink(releasetest.BinaryName("3.0.0", releasetest.ModeExit))
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitLine("did not take over")
	if pid, err := a.readPID(); err != nil || pid != old {
		t.Errorf("PID file %d, %v; want the old process %d", pid, err, old)
	}
	if got, want := s1.ask("ping"), fmt.Sprintf("v1.0.0 pid %d: ping", old); got != want {
		t.Errorf("the open connection answers %q, want %q", got, want)
	}
	if _, hello := a.dial(); hello != fmt.Sprintf("Teleport v1.0.0 pid %d", old) {
		t.Errorf("a new connection is greeted %q by another process", hello)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.cmd.Wait(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("the agent exited with %v after SIGTERM, want 0", err)
	}
}
