package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Environment of the agent.
const (
	// listenEnv is the TCP address to serve on.
	listenEnv = "TELEPORT_TESTAGENT_LISTEN"
	// inheritEnv is set for the process that takes over: the descriptor
	// numbers of its ready pipe and, when there is one, its listener
	// ("ready=3,listener=4").
	inheritEnv = "TELEPORT_TESTAGENT_INHERIT"
)

// Bounds of a handover.
const (
	// readyTimeout is how long the old process waits for the new one.
	readyTimeout = 30 * time.Second
	// drainTimeout is how long the old process serves its open
	// connections after the handover.
	drainTimeout = 10 * time.Minute
	// maxLine caps a line a client sends.
	maxLine = 4096
)

// server is what a running agent holds: its listener, its open
// connections, and its PID file.
type server struct {
	version string
	pidFile string
	ln      *net.TCPListener // nil when the agent serves nothing
	// ready is the pipe to the process that started this one, nil when
	// systemd started it.
	ready *os.File

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	done  chan struct{} // closed when conns is empty after stopAccepting
	stop  bool
}

// listen sets up the server: the inherited listener or a new one on
// listenEnv, then the PID file, then tells the old process it is ready.
func (a agent) listen(pidFile string, stdout io.Writer) (*server, error) {
	s := &server{version: a.version, pidFile: pidFile, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	if err := s.inherit(a.getenv(inheritEnv)); err != nil {
		return nil, err
	}
	if addr := a.getenv(listenEnv); s.ln == nil && addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		s.ln = l.(*net.TCPListener)
	}
	if s.ln != nil {
		fmt.Fprintf(stdout, "Teleport v%s serving on %s.\n", a.version, s.ln.Addr())
		go s.serve(s.ln)
	}
	if err := writePIDFile(pidFile); err != nil {
		s.close()
		return nil, err
	}
	if s.ready != nil {
		_, err := s.ready.Write([]byte("ready\n"))
		s.ready.Close()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("telling the old process: %w", err)
		}
	}
	return s, nil
}

// inherit takes the descriptors named by v (inheritEnv).
func (s *server) inherit(v string) error {
	if v == "" {
		return nil
	}
	for _, kv := range strings.Split(v, ",") {
		name, num, _ := strings.Cut(kv, "=")
		fd, err := strconv.Atoi(num)
		if err != nil || fd < 3 {
			return fmt.Errorf("bad %s %q", inheritEnv, v)
		}
		f := os.NewFile(uintptr(fd), name)
		switch name {
		case "ready":
			s.ready = f
		case "listener":
			l, err := net.FileListener(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("inherited listener: %w", err)
			}
			s.ln = l.(*net.TCPListener)
		default:
			return fmt.Errorf("bad %s %q", inheritEnv, v)
		}
	}
	return nil
}

// writePIDFile writes this process's PID to path atomically; "" writes
// nothing.
func writePIDFile(path string) error {
	if path == "" {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("PID file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("PID file: %w", err)
	}
	return nil
}

func (s *server) serve(ln *net.TCPListener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed by stopAccepting or close
		}
		s.mu.Lock()
		if s.stop {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go s.handle(c)
	}
}

// handle greets c and answers each line with this process's version and PID.
func (s *server) handle(c net.Conn) {
	defer s.forget(c)
	defer c.Close()
	pid := os.Getpid()
	if _, err := fmt.Fprintf(c, "Teleport v%s pid %d\n", s.version, pid); err != nil {
		return
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, maxLine), maxLine)
	for sc.Scan() {
		if _, err := fmt.Fprintf(c, "v%s pid %d: %s\n", s.version, pid, sc.Text()); err != nil {
			return
		}
	}
}

func (s *server) forget(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.stop && len(s.conns) == 0 {
		s.closeDone()
	}
}

func (s *server) closeDone() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// stopAccepting closes the listener (the new process has its own copy)
// and returns how many connections are still open.
func (s *server) stopAccepting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop = true
	if s.ln != nil {
		s.ln.Close()
	}
	if len(s.conns) == 0 {
		s.closeDone()
	}
	return len(s.conns)
}

// drained is closed when the last connection closes after stopAccepting.
func (s *server) drained() <-chan struct{} { return s.done }

// close stops serving and closes every connection.
func (s *server) close() {
	s.stopAccepting()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// forkHandover starts the binary this process was started as, by the same
// path (so a moved link runs the new version), with the same arguments,
// passing it the listening socket and a pipe on which it says it is ready.
// It returns the new PID once the new process is ready, or an error when
// it exits or says nothing within readyTimeout; this process then serves
// on.
//
// This process stops accepting while the new one starts: passing a socket
// to a child puts it in blocking mode, which would leave a goroutine here
// stuck in accept(2). Connections that arrive meanwhile wait in the
// socket's backlog for whichever process serves next.
func forkHandover(s *server) (int, error) {
	lf, err := s.detach()
	if err != nil {
		return 0, err
	}
	pid, err := startNew(lf)
	if lf != nil {
		if err != nil {
			if rerr := s.reattach(lf); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		lf.Close()
	}
	return pid, err
}

// detach stops accepting and returns the listening socket, nil when
// there is none.
func (s *server) detach() (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil, nil
	}
	lf, err := s.ln.File()
	if err != nil {
		return nil, err
	}
	s.ln.Close()
	s.ln = nil
	return lf, nil
}

// reattach serves on lf again.
func (s *server) reattach(lf *os.File) error {
	l, err := net.FileListener(lf)
	if err != nil {
		return fmt.Errorf("serving again: %w", err)
	}
	s.mu.Lock()
	s.ln = l.(*net.TCPListener)
	s.mu.Unlock()
	go s.serve(s.ln)
	return nil
}

// startNew starts the new process with lf (when not nil) and waits until
// it is ready.
func startNew(lf *os.File) (int, error) {
	path, err := exec.LookPath(os.Args[0])
	if err != nil {
		return 0, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command(path, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	inherit := "ready=3"
	if lf != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, lf)
		inherit += ",listener=4"
	}
	cmd.Env = append(withoutInherit(os.Environ()), inheritEnv+"="+inherit)
	err = cmd.Start()
	w.Close()
	if err != nil {
		return 0, err
	}
	go cmd.Wait() // reap it whenever it exits
	if err := waitReady(r); err != nil {
		cmd.Process.Kill() // one that is stuck must not serve too
		return 0, err
	}
	return cmd.Process.Pid, nil
}

// waitReady waits for the new process's word on r: EOF means it exited
// (or closed the pipe) without being ready.
func waitReady(r *os.File) error {
	r.SetReadDeadline(time.Now().Add(readyTimeout))
	line, err := bufio.NewReader(io.LimitReader(r, 64)).ReadString('\n')
	switch {
	case line == "ready\n":
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("not ready within %s", readyTimeout)
	default:
		return errors.New("it exited before it was ready")
	}
}

func withoutInherit(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, inheritEnv+"=") {
			out = append(out, e)
		}
	}
	return out
}
