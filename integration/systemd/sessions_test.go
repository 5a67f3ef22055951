package systemd

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sessionTimeout bounds one read from the agent; a passing run never waits
// for it.
const sessionTimeout = time.Minute

// agentSession is a TCP connection to the test agent, which greets with
// "Teleport v<version> pid <pid>" and answers each line with
// "v<version> pid <pid>: <line>" (internal/testagent). The containers share
// the host's network, so the test dials the agent directly.
type agentSession struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
	// version and pid of the process serving it, from the greeting.
	version string
	pid     string
}

func dialAgent(t *testing.T, addr string) *agentSession {
	t.Helper()
	var c net.Conn
	waitFor(t, sessionTimeout, "the agent to accept on "+addr, func() bool {
		var err error
		c, err = net.DialTimeout("tcp", addr, time.Second)
		return err == nil
	})
	t.Cleanup(func() { c.Close() })
	s := &agentSession{t: t, c: c, r: bufio.NewReader(c)}
	var ver string
	if _, err := fmt.Sscanf(s.read(), "Teleport v%s pid %s", &ver, &s.pid); err != nil {
		t.Fatalf("greeting from the agent: %v", err)
	}
	s.version = ver
	return s
}

func (s *agentSession) read() string {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(sessionTimeout))
	line, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("reading from the agent (session with v%s pid %s): %v", s.version, s.pid, err)
	}
	return strings.TrimSuffix(line, "\n")
}

// check sends a line and wants the answer of the process that greeted.
func (s *agentSession) check(line string) {
	s.t.Helper()
	if _, err := fmt.Fprintln(s.c, line); err != nil {
		s.t.Fatalf("writing to the agent (session with v%s pid %s): %v", s.version, s.pid, err)
	}
	if got, want := s.read(), fmt.Sprintf("v%s pid %s: %s", s.version, s.pid, line); got != want {
		s.t.Errorf("the session answers %q, want %q", got, want)
	}
}

// freePort returns a TCP port free on the host's loopback now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestUpdateKeepsSessions holds a TCP session open to the agent across an
// update: the update reloads the agent, a v2 process takes over new
// connections, and the v1 process keeps serving the open session until it
// closes, after which systemd follows the v2 process (through the PID
// file) without a restart. Then an update to v3, which exits at start,
// fails its health check and rolls back, and the v2 process, which never
// handed over, keeps serving its session.
func TestUpdateKeepsSessions(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	cli := teleportUpdateBinary(t)
	c := sharedCDN(t)
	px := newProxy(t, v1)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	prepare := prepareForCLI(cli, c)
	h := bootHost(t, func(root string) error {
		if err := prepare(root); err != nil {
			return err
		}
		return writeFile(root, "/etc/default/teleport", []byte("TELEPORT_TESTAGENT_LISTEN="+addr+"\n"), 0o644)
	})
	h.mustRun(cliPath, "install", "--proxy", px.addr(), "--base-url", c.srv.URL, "--no-census", "--health-window", "2s")
	h.mustRun("systemctl", "stop", updaterTimer)
	update := func() (string, string, error) {
		return h.run(cliPath, "update", "--now", "--health-window", "3s", "--health-timeout", "10s")
	}

	s1 := dialAgent(t, addr)
	if s1.version != v1 {
		t.Fatalf("the session is served by v%s, want v%s", s1.version, v1)
	}
	s1.check("before the update")
	t.Logf("Session open to the v%s process %s; updating to %s.", s1.version, s1.pid, v2)

	px.setTarget(v2)
	if o, e, err := update(); err != nil {
		t.Fatalf("update to %s: %v\nstdout:\n%s\nstderr:\n%s", v2, err, o, e)
	}
	s1.check("after the update")
	s2 := dialAgent(t, addr)
	if s2.version != v2 || s2.pid == s1.pid {
		t.Fatalf("a new connection is served by v%s pid %s, want a new v%s process", s2.version, s2.pid, v2)
	}
	if pid := strings.TrimSpace(h.mustRun("cat", "/run/teleport.pid")); pid != s2.pid {
		t.Errorf("/run/teleport.pid names %s, want the new process %s", pid, s2.pid)
	}
	t.Logf("The v%s process %s serves new connections; the v%s session still works. Closing it.", v2, s2.pid, v1)
	s1.c.Close()
	waitFor(t, sessionTimeout, "systemd to follow the new process", func() bool {
		return h.show(agentUnit, "MainPID")["MainPID"] == s2.pid
	})
	if p := h.show(agentUnit, "ActiveState", "NRestarts"); p["ActiveState"] != "active" || p["NRestarts"] != "0" {
		t.Errorf("%s after the handover: %v, want active with no restart", agentUnit, p)
	}
	if got := h.runningVersion(); got != v2 {
		t.Errorf("agent runs %s, want %s", got, v2)
	}

	t.Logf("Updating to %s, which exits at start, with the session to the v%s process %s open.", v3, v2, s2.pid)
	px.setTarget(v3)
	o, e, err := update()
	t.Logf("teleport-update update said (err %v):\n%s%s", err, o, e)
	if err == nil || !strings.Contains(strings.ToLower(e), "roll") {
		t.Fatalf("update to %s: %v, want a failure that rolls back", v3, err)
	}
	s2.check("after the rollback")
	if s3 := dialAgent(t, addr); s3.version != v2 || s3.pid != s2.pid {
		t.Errorf("after the rollback a new connection is served by v%s pid %s, want the v%s process %s", s3.version, s3.pid, v2, s2.pid)
	}
	if pid := h.show(agentUnit, "MainPID")["MainPID"]; pid != s2.pid {
		t.Errorf("%s MainPID %s after the rollback, want the v%s process %s", agentUnit, pid, v2, s2.pid)
	}
	if st := h.status(); st.Active != v2 || !slices.Contains(st.Skip, v3) {
		t.Errorf("status after the rollback: active %q skip %q, want %s with %s skipped", st.Active, st.Skip, v2, v3)
	}
}
