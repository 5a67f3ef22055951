package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

func TestExitCodes(t *testing.T) {
	root := t.TempDir()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"instal"}, exitUsage, "unknown command"},
		{[]string{"status", "extra"}, exitUsage, "unknown command"},
		{[]string{"update", "--bogus"}, exitUsage, "unknown flag"},
		{[]string{"install"}, exitUsage, "--proxy HOST[:PORT] is required"},
		{[]string{"install", "--proxy", "https://proxy/x"}, exitFailure, "is not HOST[:PORT]"},
		{[]string{"install", "--proxy", "proxy:443", "--base-url", "http://cdn"}, exitFailure, "--base-url"},
		{[]string{"update"}, exitFailure, "not installed"},
		{[]string{"status"}, exitFailure, "not installed"},
		{[]string{"rollback"}, exitFailure, "not installed"},
		{[]string{"census", "--disable", "--enable"}, exitUsage, "exclusive"},
		{[]string{"version"}, exitOK, ""},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), append([]string{"--root", root}, tc.args...), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", code, tc.code, errb.String())
			}
			if tc.msg != "" && !strings.Contains(errb.String(), tc.msg) {
				t.Fatalf("stderr %q does not mention %q", errb.String(), tc.msg)
			}
		})
	}
	// Nothing was created on a host that was never installed.
	if _, err := os.Stat(filepath.Join(root, "var/lib/teleport-update/update.yaml")); !os.IsNotExist(err) {
		t.Fatalf("update.yaml created: %v", err)
	}
}

// installedRoot writes update.yaml for an installed host into a fresh root
// and returns the root.
func installedRoot(t *testing.T, edit func(*updater.Config)) string {
	t.Helper()
	root := t.TempDir()
	cfg := updater.NewConfig()
	cfg.Spec.Proxy = "proxy.invalid:443"
	cfg.Spec.CensusSalt = "0123456789abcdef"
	if edit != nil {
		edit(cfg)
	}
	if err := updater.SaveConfig(install.New(root).StatePath(), cfg); err != nil {
		t.Fatal(err)
	}
	return root
}

// runIn runs the CLI in-process with c's settings and returns the exit
// code, stdout and stderr.
func runIn(c *cli, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	c.stdout, c.stderr = &out, &errb
	code := c.run(context.Background(), args)
	return code, out.String(), errb.String()
}

func TestHostSystemdOnlyUnderSlash(t *testing.T) {
	t.Parallel()
	connect := updater.SystemdFunc(func(context.Context) (install.Systemd, error) { return nil, nil })
	for root, want := range map[string]bool{"/": true, "//": true, "/.": true, "/tmp/host": false, "relative": false, "": false} {
		c := &cli{root: root, connectSystemd: connect}
		if got := c.hostSystemd() != nil; got != want {
			t.Errorf("--root %q: reaches the host's systemd = %v, want %v", root, got, want)
		}
	}
}

// A root that looks like a systemd host (run/systemd/system exists) must
// still never reach the host's own systemd: every command that starts,
// stops or inspects units runs without connecting at all.
func TestRootNeverConnectsToHostSystemd(t *testing.T) {
	t.Parallel()
	root := installedRoot(t, func(cfg *updater.Config) { cfg.Spec.Pinned = true })
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !install.New(root).HasSystemd() {
		t.Fatal("the test root does not look like a systemd host")
	}
	var calls atomic.Int32
	c := &cli{connectSystemd: func(context.Context) (install.Systemd, error) {
		calls.Add(1)
		return nil, errors.New("the host's systemd was contacted under --root")
	}}
	for _, args := range [][]string{
		{"disable"}, {"enable"}, {"update"}, {"update", "--now"}, {"census", "--json"}, {"status", "--offline"}, {"uninstall"},
	} {
		code, out, errs := runIn(c, append([]string{"--root", root}, args...)...)
		if code != exitOK {
			t.Errorf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
		}
		if n := calls.Load(); n != 0 {
			t.Fatalf("%v: connected to the host's systemd %d times under --root %s", args, n, root)
		}
	}
}

// status must not pass terminal escape sequences from update.yaml (errors
// of earlier runs quote what proxies, CDNs and systemd said) to the
// terminal, in text or in JSON.
func TestStatusStripsControlCharacters(t *testing.T) {
	t.Parallel()
	evil := "download failed: \x1b]0;owned\x07\x1b[2J\x1b[31mred\x1b[0m \u009b1mC1\u009b0m bell\x07 del\x7f nul\x00 ünïcødé ✓\nsecond line"
	root := installedRoot(t, func(cfg *updater.Config) {
		cfg.Status.LastUpdate = &updater.LastUpdate{Target: "2.0.0", Error: evil, ErrorCode: "download\x1b[8m"}
	})
	c := &cli{connectSystemd: install.NewDBus}
	for _, args := range [][]string{{"status", "--offline"}, {"status", "--offline", "--json"}} {
		code, out, errs := runIn(c, append([]string{"--root", root}, args...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		if i := strings.IndexFunc(out, isTerminalControl); i >= 0 {
			t.Errorf("%v prints control character %U:\n%q", args, []rune(out[i:])[0], out)
		}
		if strings.Contains(out, "owned") || strings.Contains(out, `\u001b`) {
			t.Errorf("%v prints the escape payload:\n%s", args, out)
		}
		if !strings.Contains(out, "download failed:") || !strings.Contains(out, "red") || !strings.Contains(out, "ünïcødé ✓") {
			t.Errorf("%v lost the printable text:\n%s", args, out)
		}
	}
}

// isTerminalControl reports the characters a terminal acts on: C0 controls
// other than newline (status ends its lines with it), DEL and C1 controls.
func isTerminalControl(r rune) bool {
	return (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f)
}

// installSelfRootEnv makes TestInstallSelfCopiesTheRunningFile act as its
// own child process: it installs itself into the root this names.
const installSelfRootEnv = "TELEPORT_UPDATE_TEST_INSTALL_SELF_ROOT"

// installSelf copies the file the process is running, even when the path it
// was started by names another file by the time it copies: whoever can
// write that path must not get their file installed as the updater.
func TestInstallSelfCopiesTheRunningFile(t *testing.T) {
	if root := os.Getenv(installSelfRootEnv); root != "" {
		fmt.Println("ready")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			t.Fatalf("waiting for the path to be replaced: %v", err)
		}
		if err := installSelf(root); err != nil {
			t.Fatalf("installSelf: %v", err)
		}
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	running, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, root := t.TempDir(), t.TempDir()
	exe := filepath.Join(dir, "teleport-update")
	if err := os.WriteFile(exe, running, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestInstallSelfCopiesTheRunningFile$")
	cmd.Env = append(os.Environ(), installSelfRootEnv+"="+root)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q, %v\n%s", line, err, stderr.String())
	}

	// The path the child was started by now names an impostor.
	impostor := []byte("#!/bin/sh\necho impostor\n")
	if err := os.WriteFile(exe+".new", impostor, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	stdin.Close()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s\n%s", err, rest, stderr.String())
	}

	installed, err := os.ReadFile(filepath.Join(root, updater.UpdaterBinPath))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(installed, impostor) {
		t.Fatalf("installSelf copied the file now at the path it was started by, not the running executable")
	}
	if !bytes.Equal(installed, running) {
		t.Fatalf("installed %d bytes, not the running executable's %d", len(installed), len(running))
	}
}
