package nspawn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Timeouts of the container life cycle. Booting takes about half a second
// and powering off about two on an idle machine; the bounds leave room for
// a loaded 2-core CI runner booting several containers at once.
const (
	DefaultBootTimeout = 90 * time.Second
	stopTimeout        = 30 * time.Second
	pollInterval       = 50 * time.Millisecond
	journalTimeout     = 30 * time.Second
	consoleTailBytes   = 8 << 10 // console log shown when a boot fails
	maxMachineName     = 64      // systemd machine names are host names
)

// containerPath is PATH for commands run inside a container.
const containerPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// cgroupParent is the directory under the cgroup v2 root that holds one
// cgroup per container (nspawn --keep-unit needs each in its own).
const cgroupParent = "teleport-update-nspawn"

// Options configures Boot. The zero value is ready to use.
type Options struct {
	// Name prefixes the machine name; default: derived from the test name.
	Name string
	// Tarball is the rootfs tarball; default DefaultTarball().
	Tarball string
	// BootTimeout bounds the boot until systemd reports running or
	// degraded; default DefaultBootTimeout.
	BootTimeout time.Duration
	// Prepare, when set, runs on the host with the merged root directory
	// before systemd boots: write units or files the first boot should see.
	Prepare func(root string) error
	// ExtraArgs are appended to the systemd-nspawn command line (e.g.
	// "--bind-ro=/src:/dst").
	ExtraArgs []string
}

// Container is a booted systemd container. Its methods are safe for
// concurrent use, except Reboot, which must not overlap any other call.
type Container struct {
	t           testing.TB
	name        string
	dir         string // host work dir: upper/, work/, merged/, console.log, owner
	root        string // dir/merged
	cgroup      string // the container's own cgroup v2 directory
	extraArgs   []string
	bootTimeout time.Duration

	mu     sync.Mutex
	b      *boot // the current boot; nil before the first start
	leader int   // the current boot's PID 1 as seen from the host; 0 until found
}

// boot is one run of systemd-nspawn.
type boot struct {
	proc *os.Process
	done chan struct{} // closed when systemd-nspawn exits
	err  error         // nspawn's exit status, valid after done
}

// current returns the current boot and its leader PID (0 if not found yet).
func (c *Container) current() (*boot, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b, c.leader
}

func (c *Container) setCurrent(b *boot, leader int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b, c.leader = b, leader
}

var machineSeq atomic.Int64

// Boot starts a container and returns once its systemd reports the system
// running or degraded. It fails the test (t.Fatal) if the harness is not
// available or the boot fails, printing the container's console. A cleanup
// registered on t powers the container off (SIGTERM to systemd-nspawn), waits
// for it, unmounts the overlay and removes its directories and cgroup.
func Boot(ctx context.Context, t testing.TB, opts Options) *Container {
	t.Helper()
	if opts.Tarball == "" {
		opts.Tarball = DefaultTarball()
	}
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = DefaultBootTimeout
	}
	if err := availableWith(opts.Tarball); err != nil {
		t.Fatalf("Booting a systemd container: %v", err)
	}
	start := time.Now()
	base, err := baseDir(opts.Tarball)
	if err != nil {
		t.Fatalf("Booting a systemd container: %v", err)
	}
	cgRoot, err := cgroup2Root()
	if err != nil {
		t.Fatalf("Booting a systemd container: %v", err)
	}

	sweepOnce.Do(func() { sweep(t.Logf) })

	name := machineName(opts.Name, t.Name(), os.Getpid(), machineSeq.Add(1))
	dir, err := os.MkdirTemp("", workDirPrefix+name+"-")
	if err != nil {
		t.Fatalf("Creating container dir: %v", err)
	}
	c := &Container{
		t:           t,
		name:        name,
		dir:         dir,
		root:        filepath.Join(dir, "merged"),
		cgroup:      filepath.Join(cgRoot, cgroupParent, name),
		extraArgs:   opts.ExtraArgs,
		bootTimeout: opts.BootTimeout,
	}
	t.Cleanup(c.teardown)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(self(c.cgroup).String()), 0o644); err != nil {
		t.Fatalf("Booting container %s: recording its owner: %v", name, err)
	}

	if err := c.mountOverlay(base); err != nil {
		t.Fatalf("Booting container %s: %v", name, err)
	}
	if opts.Prepare != nil {
		if err := opts.Prepare(c.root); err != nil {
			t.Fatalf("Preparing container %s: %v", name, err)
		}
	}
	if err := c.boot(ctx); err != nil {
		t.Fatalf("Booting container %s: %v", name, err)
	}
	t.Logf("Container %s booted in %v, root %s, leader PID %d.",
		name, time.Since(start).Round(time.Millisecond), c.root, c.Leader())
	return c
}

// boot starts systemd-nspawn and waits until systemd is running or
// degraded; on failure the error includes the console.
func (c *Container) boot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.bootTimeout)
	defer cancel()
	b, err := c.start()
	if err != nil {
		return err
	}
	c.setCurrent(b, 0)
	if err := c.findLeader(ctx, b); err != nil {
		return fmt.Errorf("%w\n%s", err, c.console())
	}
	state, err := c.waitRunning(ctx, b)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, c.console())
	}
	if state == "degraded" {
		out, _, _ := c.Exec(ctx, "systemctl", "--failed", "--no-legend", "--plain")
		c.t.Logf("Container %s is degraded; failed units:\n%s", c.name, out)
	}
	return nil
}

// Reboot powers the container off and boots it again on the same root:
// everything written to disk persists, /run and the processes do not. It
// returns once systemd is running again. Enabled units start as on a real
// boot. No other method may be called while Reboot runs.
func (c *Container) Reboot(ctx context.Context) error {
	b, _ := c.current()
	if err := c.powerOff(b); err != nil {
		return fmt.Errorf("rebooting container %s: %w", c.name, err)
	}
	if err := removeCgroup(c.cgroup); err != nil { // start afresh below
		return fmt.Errorf("rebooting container %s: %w", c.name, err)
	}
	if err := c.boot(ctx); err != nil {
		return fmt.Errorf("rebooting container %s: %w", c.name, err)
	}
	return nil
}

// Name returns the container's machine name (also its host name).
func (c *Container) Name() string { return c.name }

// Root returns the container's root directory on the host (the merged
// overlay): files written below it appear inside the container at once.
func (c *Container) Root() string { return c.root }

// Leader returns the host PID of the container's systemd.
func (c *Container) Leader() int {
	_, leader := c.current()
	return leader
}

// Exec runs args inside the container (all of its namespaces, its root and
// working directory "/") with a clean environment (PATH, HOME=/root,
// LANG=C.UTF-8; prefix the command with "env K=V" for more) and returns
// its output. err is an *exec.ExitError when the command exited non-zero.
func (c *Container) Exec(ctx context.Context, args ...string) (stdout, stderr []byte, err error) {
	if len(args) == 0 {
		return nil, nil, errors.New("exec in container: no command")
	}
	b, leader := c.current()
	if b == nil || leader == 0 {
		return nil, nil, fmt.Errorf("exec %q in container %s: container is not running", args[0], c.name)
	}
	select {
	case <-b.done:
		return nil, nil, fmt.Errorf("exec %q in container %s: container has exited", args[0], c.name)
	default:
	}
	nsArgs := append([]string{"--target", strconv.Itoa(leader), "--all", "--root", "--wd", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", nsArgs...)
	cmd.Env = []string{"PATH=" + containerPath, "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	cmd.Dir = "/"
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			err = fmt.Errorf("exec %q in container %s: %w", args[0], c.name, err)
		}
	}
	return o.Bytes(), e.Bytes(), err
}

// Journal returns the journal of the given units inside the container
// (journalctl -u U... --no-pager), or the whole boot's journal when no unit
// is given; meant for failure output, so errors are part of the text.
func (c *Container) Journal(units ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), journalTimeout)
	defer cancel()
	args := []string{"journalctl", "--no-pager", "-o", "short-precise", "-n", "400"}
	for _, u := range units {
		args = append(args, "-u", u)
	}
	out, errOut, err := c.Exec(ctx, args...)
	s := string(out)
	if err != nil {
		s += fmt.Sprintf("\n(journalctl failed: %v: %s)", err, bytes.TrimSpace(errOut))
	}
	return s
}

// machineName builds a valid, unique machine name (a host name: lowercase
// letters, digits and dashes, at most maxMachineName characters).
func machineName(prefix, testName string, pid int, seq int64) string {
	if prefix == "" {
		prefix = testName
	}
	var b strings.Builder
	dash := true // no leading dash
	for _, r := range strings.ToLower(prefix) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	suffix := fmt.Sprintf("-%d-%d", pid, seq)
	s := strings.TrimRight(b.String(), "-")
	if s == "" {
		s = "nspawn"
	}
	if len(s)+len(suffix) > maxMachineName {
		s = strings.TrimRight(s[:maxMachineName-len(suffix)], "-")
	}
	return s + suffix
}

func (c *Container) mountOverlay(base string) error {
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(c.dir, d), 0o755); err != nil {
			return fmt.Errorf("creating overlay dir: %w", err)
		}
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s",
		base, filepath.Join(c.dir, "upper"), filepath.Join(c.dir, "work"))
	if err := unix.Mount("overlay", c.root, "overlay", 0, data); err != nil {
		return fmt.Errorf("mounting overlay on %s: %w", c.root, err)
	}
	return nil
}

// start launches systemd-nspawn in its own session and its own cgroup. The
// process is started from a goroutine locked to its OS thread, which lives
// until nspawn exits: Pdeathsig then powers the container off if this test
// process dies without running its cleanups, and never earlier.
func (c *Container) start() (*boot, error) {
	if err := os.MkdirAll(c.cgroup, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", c.cgroup, err)
	}
	cg, err := os.Open(c.cgroup)
	if err != nil {
		return nil, fmt.Errorf("opening cgroup %s: %w", c.cgroup, err)
	}
	defer cg.Close()
	logFile, err := os.OpenFile(filepath.Join(c.dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating console log: %w", err)
	}
	defer logFile.Close()

	args := []string{
		"--directory=" + c.root,
		"--boot",
		"--register=no",
		"--keep-unit",
		"--machine=" + c.name,
		"--console=passive",
		"--link-journal=no",
	}
	args = append(args, c.extraArgs...)
	cmd := exec.Command("systemd-nspawn", args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile // stdin: /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:      true,
		Pdeathsig:   syscall.SIGTERM,
		UseCgroupFD: true,
		CgroupFD:    int(cg.Fd()),
	}

	b := &boot{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with nspawn
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		b.proc = cmd.Process
		started <- nil
		b.err = cmd.Wait()
		close(b.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting systemd-nspawn: %w", err)
	}
	return b, nil
}

// findLeader waits for the container's systemd: a child of nspawn named
// "systemd" in another PID namespace.
func (c *Container) findLeader(ctx context.Context, b *boot) error {
	ourNS, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return fmt.Errorf("reading own PID namespace: %w", err)
	}
	for {
		if pid := childInOtherNS(b.proc.Pid, "systemd", ourNS); pid > 0 {
			c.setCurrent(b, pid)
			return nil
		}
		if err := pause(ctx, b); err != nil {
			return fmt.Errorf("waiting for the container's systemd: %w", err)
		}
	}
}

// childInOtherNS returns the PID of a child of ppid whose command name is
// comm and whose PID namespace differs from ourNS, or 0.
func childInOtherNS(ppid int, comm, ourNS string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		st, err := parseStat(raw)
		if err != nil || st.ppid != ppid || st.comm != comm {
			continue
		}
		ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns/pid"))
		if err == nil && ns != ourNS {
			return pid
		}
	}
	return 0
}

// waitRunning waits for `systemctl is-system-running --wait` to report
// running or degraded and returns that state.
func (c *Container) waitRunning(ctx context.Context, b *boot) (string, error) {
	var last string
	for {
		out, errOut, err := c.Exec(ctx, "systemctl", "is-system-running", "--wait")
		state := strings.TrimSpace(string(out))
		switch state {
		case "running", "degraded":
			return state, nil
		case "maintenance", "stopping", "offline":
			if err == nil || state != "offline" {
				return "", fmt.Errorf("system state %q", state)
			}
		}
		last = strings.TrimSpace(state + " " + string(errOut))
		if err := pause(ctx, b); err != nil {
			return "", fmt.Errorf("waiting for systemd to finish booting (last: %q): %w", last, err)
		}
	}
}

// pause sleeps one poll interval; it fails when ctx ends or nspawn exits.
func pause(ctx context.Context, b *boot) error {
	timer := time.NewTimer(pollInterval)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done:
		return fmt.Errorf("systemd-nspawn exited: %v", b.err)
	case <-timer.C:
		return nil
	}
}

// console returns the tail of the container's console log.
func (c *Container) console() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "console.log"))
	if err != nil {
		return fmt.Sprintf("(no console log: %v)", err)
	}
	if len(b) > consoleTailBytes {
		b = b[len(b)-consoleTailBytes:]
	}
	return "--- console of container " + c.name + " ---\n" + string(b)
}

// teardown powers the container off and removes everything Boot created.
func (c *Container) teardown() {
	if b, _ := c.current(); b != nil {
		select {
		case <-b.done:
			c.t.Logf("Container %s had already exited: %v\n%s", c.name, b.err, c.console())
		default:
			if c.t.Failed() {
				c.t.Logf("%s", c.console())
			}
			if err := c.powerOff(b); err != nil {
				c.t.Errorf("Removing container %s: %v", c.name, err)
			}
		}
	}
	if err := unmount(c.root); err != nil {
		c.t.Errorf("Removing container %s: %v", c.name, err)
		return // never RemoveAll through a live mount
	}
	if err := removeCgroup(c.cgroup); err != nil {
		c.t.Errorf("Removing container %s: %v", c.name, err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		c.t.Errorf("Removing container %s: %v", c.name, err)
	}
}

// powerOff stops the boot b: SIGTERM to systemd-nspawn (a clean poweroff),
// SIGKILL if that takes longer than stopTimeout (then it returns an error).
func (c *Container) powerOff(b *boot) error {
	if b == nil {
		return nil
	}
	select {
	case <-b.done:
		return nil
	default:
	}
	_ = b.proc.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
		return nil
	case <-time.After(stopTimeout):
		_ = b.proc.Kill()
		<-b.done
		return fmt.Errorf("container %s did not power off within %v; killed it", c.name, stopTimeout)
	}
}

// unmount unmounts the overlay at dir if it is mounted, detaching it lazily
// when it stays busy.
func unmount(dir string) error {
	err := unmountIdle(dir)
	if err == nil || !errors.Is(err, unix.EBUSY) {
		return err
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching busy mount %s: %w", dir, err)
	}
	return nil
}

// unmountIdle unmounts dir if it is mounted, retrying for a second while it
// is busy; it fails (wrapping EBUSY) if it stays busy.
func unmountIdle(dir string) error {
	var err error
	for range 20 {
		err = unix.Unmount(dir, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // unmounted, or never mounted
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("unmounting %s: %w", dir, err)
}

// removeCgroup removes a cgroup directory and its children, deepest first,
// waiting briefly for exiting processes to leave them.
func removeCgroup(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for range 40 {
			if err = unix.Rmdir(dirs[i]); err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			time.Sleep(pollInterval)
		}
		if err != nil {
			return fmt.Errorf("removing cgroup %s: %w", dirs[i], err)
		}
	}
	return nil
}
