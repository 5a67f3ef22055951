// Command agent is the demo's stand-in for the teleport binary. Its version
// is set at build time:
//
//	go build -ldflags "-X main.version=1.0.0" ./demo/agent
//
// and -X main.broken=true builds a release whose `teleport version` fails,
// so the updater's health check rejects it.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

var (
	version = "0.0.0-dev"
	broken  = "false"
)

func main() {
	cmd := ""
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	switch cmd {
	case "version":
		if broken == "true" {
			fmt.Fprintf(os.Stderr, "teleport %s: this demo build is broken on purpose\n", version)
			os.Exit(1)
		}
		fmt.Printf("Teleport v%s git:demo %s\n", version, runtime.Version())
	case "start":
		if broken == "true" {
			fmt.Fprintf(os.Stderr, "teleport %s: this demo build is broken on purpose\n", version)
			os.Exit(1)
		}
		fmt.Printf("Teleport v%s demo agent running; stop it with SIGTERM.\n", version)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
	default:
		fmt.Fprintln(os.Stderr, "usage: teleport version|start")
		os.Exit(2)
	}
}
