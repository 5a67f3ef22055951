package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Limits on how long the demo waits for its child processes.
const (
	proxyStartTimeout = 30 * time.Second
	proxyStopTimeout  = 10 * time.Second
	commandTimeout    = 2 * time.Minute
	// maxLogLine is the longest proxy log line the demo reads as a line.
	maxLogLine = 1 << 20
)

// cmdResult is what a finished teleport-update command left behind.
type cmdResult struct {
	stdout   string
	stderr   string
	exitCode int
}

// runCmd runs name with args in the demo environment, echoing the command
// line and its output (indented) to the demo's output.
func (d *demo) runCmd(ctx context.Context, name string, args ...string) (cmdResult, error) {
	return d.runCmdEcho(ctx, true, name, args...)
}

// runCmdEcho is runCmd; with echo false it shows only the command line
// (the output is still printed when the command fails).
func (d *demo) runCmdEcho(ctx context.Context, echo bool, name string, args ...string) (cmdResult, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	d.printf("  $ %s\n", d.shorten(strings.Join(append([]string{d.displayName(name)}, args...), " ")))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = d.env
	cmd.Dir = d.work
	// Both streams go to one buffer as well, so the narration shows them
	// in the order they were written.
	var stdout, stderr bytes.Buffer
	both := &lockedBuffer{}
	cmd.Stdout = io.MultiWriter(&stdout, both)
	cmd.Stderr = io.MultiWriter(&stderr, both)
	err := cmd.Run()
	res := cmdResult{stdout: stdout.String(), stderr: stderr.String()}
	if echo || err != nil {
		d.echo(both.String())
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return res, fmt.Errorf("run %s: %w", d.displayName(name), err)
		}
		res.exitCode = ee.ExitCode()
	}
	return res, nil
}

// lockedBuffer is a bytes.Buffer that two copying goroutines (a child's
// stdout and stderr) may write concurrently.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tu runs teleport-update and fails unless it exits 0.
func (d *demo) tu(ctx context.Context, args ...string) (cmdResult, error) {
	res, err := d.runCmd(ctx, d.updater, args...)
	if err != nil {
		return res, err
	}
	if res.exitCode != 0 {
		return res, fmt.Errorf("teleport-update %s exited %d, want 0", strings.Join(args, " "), res.exitCode)
	}
	return res, nil
}

// displayName shows the demo's teleport-update by name and other programs
// by their (shortened) path.
func (d *demo) displayName(path string) string {
	if path == d.updater {
		return "teleport-update"
	}
	return d.shorten(path)
}

// echo prints s indented under the command that produced it.
func (d *demo) echo(s string) {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return
	}
	for line := range strings.SplitSeq(s, "\n") {
		d.printf("    %s\n", d.shorten(line))
	}
}

// proxyProc is the `teleport-update proxy serve` child process.
type proxyProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{} // closed when the process has exited
	mu   sync.Mutex
	log  bytes.Buffer // everything the proxy logged
	err  error        // Wait's result, valid after done
}

// startProxy starts `teleport-update proxy serve` with args, which name
// addrFile as its --addr-file, and waits for the address written there.
func (d *demo) startProxy(ctx context.Context, addrFile string, args ...string) (*proxyProc, error) {
	d.printf("  $ %s &\n", d.shorten(strings.Join(append([]string{"teleport-update"}, args...), " ")))
	if err := os.Remove(addrFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	cmd := exec.Command(d.updater, args...)
	cmd.Env = d.env
	cmd.Dir = d.work
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	p := &proxyProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), maxLogLine)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		// Keep draining after an overlong line, so the proxy never blocks
		// on a full pipe.
		_, _ = io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(proxyStartTimeout)
	defer timer.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			p.addr = strings.TrimSpace(string(b))
			d.printf("    (the proxy is listening on %s)\n", p.addr)
			return p, nil
		}
		select {
		case <-poll.C:
		case <-p.done:
			return nil, fmt.Errorf("the proxy exited before it listened (%v); its log:\n%s", p.err, p.logText())
		case <-timer.C:
			p.stop()
			return nil, fmt.Errorf("the proxy did not write its address to %s within %s; its log:\n%s", addrFile, proxyStartTimeout, p.logText())
		case <-ctx.Done():
			p.stop()
			return nil, fmt.Errorf("wait for the proxy: %w", ctx.Err())
		}
	}
}

func (p *proxyProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM (SIGKILL after proxyStopTimeout) and waits for the
// process to exit. It reports whether the proxy stopped cleanly.
func (p *proxyProc) stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(proxyStopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.err
	case <-timer.C:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("the proxy ignored SIGTERM for %s and was killed", proxyStopTimeout)
	}
}

// copyFile copies src to dst with mode perm.
func copyFile(src, dst string, perm os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return nil
}
