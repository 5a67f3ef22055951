// Command testagent is a stand-in for the teleport binary in tests and demos.
// Its behaviour is fixed at build time with -ldflags:
//
//	-X main.version=1.2.3   the version it reports (default 0.0.0)
//	-X main.mode=ok         ok | exit | crash (default ok)
//	-X main.crashAfter=5s   how long "start" runs before crashing in mode crash
//
// "teleport version" prints "Teleport v<version> git:test go1.26" and exits 0
// in every mode: the binary is fine, only the service misbehaves.
// "teleport start [flags]" in mode ok runs until SIGTERM or SIGINT, logging a
// line every few seconds, and exits 0; in mode exit it exits 1 at once; in
// mode crash it runs for crashAfter and then exits 1.
//
// Like Teleport, "start" takes --pid-file=PATH and writes its PID there, and
// on SIGHUP it hands over to a new process of the binary it was started as
// (os.Args[0], so a link that moved runs the new version): the new process
// inherits the listening socket, writes the PID file and says it is ready;
// the old one then stops accepting, serves its open connections until they
// close (or drainTimeout passes) and exits. A new process that fails before
// it is ready leaves the old one serving.
//
// With TELEPORT_TESTAGENT_LISTEN=HOST:PORT in the environment (for example
// from /etc/default/teleport), it serves TCP there: each connection is
// greeted with "Teleport v<version> pid <pid>", and each line received is
// answered with "v<version> pid <pid>: <line>", so a client can tell which
// process of which version serves it.
//
// Build it with internal/releasetest, which also packs release tarballs.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Set with -ldflags "-X main.name=value".
var (
	version    = "0.0.0"
	mode       = "ok"
	crashAfter = "5s"
)

// heartbeat is how often a running agent logs that it is alive.
const heartbeat = 3 * time.Second

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitBadBuild = 3 // the binary was built with a bad mode or crashAfter
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	a := agent{version: version, mode: mode, crashAfter: crashAfter, after: time.After,
		hup: hup, env: os.Getenv, handover: forkHandover}
	code := a.run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// agent is the behaviour built into the binary.
type agent struct {
	version    string
	mode       string
	crashAfter string
	after      func(time.Duration) <-chan time.Time // time.After; injectable for tests
	// hup delivers SIGHUP; nil never does.
	hup <-chan os.Signal
	// env reads the environment; nil reads nothing.
	env func(string) string
	// handover starts the process that takes over (forkHandover).
	handover func(s *server) (pid int, err error)
}

// run executes the agent with the command-line arguments args.
func (a agent) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: teleport version | teleport start [flags]")
		return exitUsage
	}
	switch args[0] {
	case "version":
		fmt.Fprintf(stdout, "Teleport v%s git:test go1.26\n", a.version)
		return exitOK
	case "start":
		return a.start(ctx, pidFileFlag(args[1:]), stdout, stderr)
	default:
		fmt.Fprintf(stderr, "teleport: unknown command %q\n", args[0])
		return exitUsage
	}
}

// pidFileFlag returns the value of --pid-file (or --pid-file=) in args, "" without.
func pidFileFlag(args []string) string {
	for i, a := range args {
		if v, ok := cutFlag(a, "pid-file"); ok {
			return v
		}
		if (a == "--pid-file" || a == "-pid-file") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func cutFlag(arg, name string) (string, bool) {
	for _, p := range []string{"--" + name + "=", "-" + name + "="} {
		if len(arg) > len(p) && arg[:len(p)] == p {
			return arg[len(p):], true
		}
	}
	return "", false
}

func (a agent) getenv(k string) string {
	if a.env == nil {
		return ""
	}
	return a.env(k)
}

func (a agent) start(ctx context.Context, pidFile string, stdout, stderr io.Writer) int {
	var crash <-chan time.Time
	switch a.mode {
	case "ok":
	case "exit":
		fmt.Fprintf(stderr, "Teleport v%s failed to start: built to exit (mode exit).\n", a.version)
		return exitFailed
	case "crash":
		d, err := time.ParseDuration(a.crashAfter)
		if err != nil || d < 0 {
			fmt.Fprintf(stderr, "teleport: bad crashAfter %q built in\n", a.crashAfter)
			return exitBadBuild
		}
		crash = a.after(d)
	default:
		fmt.Fprintf(stderr, "teleport: bad mode %q built in\n", a.mode)
		return exitBadBuild
	}
	s, err := a.listen(pidFile, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "Teleport v%s failed to start: %v\n", a.version, err)
		return exitFailed
	}
	defer s.close()
	fmt.Fprintf(stdout, "Teleport v%s started (mode %s, pid %d).\n", a.version, a.mode, os.Getpid())
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "Teleport v%s stopping.\n", a.version)
			return exitOK
		case <-crash:
			fmt.Fprintf(stderr, "Teleport v%s crashed (mode crash after %s).\n", a.version, a.crashAfter)
			return exitFailed
		case <-a.hup:
			if a.handOver(ctx, s, stdout, stderr) {
				return exitOK
			}
		case <-a.after(heartbeat):
			fmt.Fprintf(stdout, "Teleport v%s running.\n", a.version)
		}
	}
}

// handOver starts the process that takes over and, once it did, drains
// the open connections; it reports whether this process is done.
func (a agent) handOver(ctx context.Context, s *server, stdout, stderr io.Writer) bool {
	if a.handover == nil {
		fmt.Fprintf(stderr, "Teleport v%s cannot hand over; still serving.\n", a.version)
		return false
	}
	fmt.Fprintf(stdout, "Teleport v%s got SIGHUP; starting the new process.\n", a.version)
	pid, err := a.handover(s)
	if err != nil {
		fmt.Fprintf(stderr, "Teleport v%s: the new process did not take over: %v; still serving.\n", a.version, err)
		return false
	}
	n := s.stopAccepting()
	fmt.Fprintf(stdout, "Teleport v%s handed over to pid %d; draining %d open connection(s).\n", a.version, pid, n)
	select {
	case <-s.drained():
		fmt.Fprintf(stdout, "Teleport v%s drained; exiting.\n", a.version)
	case <-ctx.Done():
		fmt.Fprintf(stdout, "Teleport v%s stopping while draining.\n", a.version)
	case <-a.after(drainTimeout):
		fmt.Fprintf(stdout, "Teleport v%s: connections still open after %s; exiting.\n", a.version, drainTimeout)
	}
	return true
}
