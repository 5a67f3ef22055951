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
	a := agent{version: version, mode: mode, crashAfter: crashAfter, after: time.After}
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
		return a.start(ctx, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "teleport: unknown command %q\n", args[0])
		return exitUsage
	}
}

func (a agent) start(ctx context.Context, stdout, stderr io.Writer) int {
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
	fmt.Fprintf(stdout, "Teleport v%s started (mode %s, pid %d).\n", a.version, a.mode, os.Getpid())
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "Teleport v%s stopping.\n", a.version)
			return exitOK
		case <-crash:
			fmt.Fprintf(stderr, "Teleport v%s crashed (mode crash after %s).\n", a.version, a.crashAfter)
			return exitFailed
		case <-a.after(heartbeat):
			fmt.Fprintf(stdout, "Teleport v%s running.\n", a.version)
		}
	}
}
