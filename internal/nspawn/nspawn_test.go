package nspawn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    procStat
		wantErr error
	}{
		{name: "plain", in: "1 (systemd) S 0 1 1 0 -1 4194560 1", want: procStat{pid: 1, comm: "systemd", ppid: 0}},
		{name: "comm with spaces and parens", in: "42 (a (b) c) R 7 42 42", want: procStat{pid: 42, comm: "a (b) c", ppid: 7}},
		{name: "trailing newline", in: "9 (sh) S 3 9 9\n", want: procStat{pid: 9, comm: "sh", ppid: 3}},
		{name: "empty comm", in: "5 () S 4", want: procStat{pid: 5, comm: "", ppid: 4}},
		{name: "with start time", in: "4242 (systemd) S 4240 4242 4242 0 -1 4194560 1000 0 0 0 5 3 0 0 20 0 1 0 987654 170000000 3000 18446744073709551615", want: procStat{pid: 4242, comm: "systemd", ppid: 4240, start: 987654}},
		{name: "bad start time", in: "4242 (systemd) S 4240 4242 4242 0 -1 4194560 1000 0 0 0 5 3 0 0 20 0 1 0 x 1", wantErr: errBadStat},
		{name: "empty", in: "", wantErr: errBadStat},
		{name: "no comm", in: "1 systemd S 0", wantErr: errBadStat},
		{name: "no pid", in: "(systemd) S 0", wantErr: errBadStat},
		{name: "bad pid", in: "x (systemd) S 0", wantErr: errBadStat},
		{name: "zero pid", in: "0 (systemd) S 0", wantErr: errBadStat},
		{name: "missing ppid", in: "1 (systemd) S", wantErr: errBadStat},
		{name: "bad ppid", in: "1 (systemd) S -3", wantErr: errBadStat},
		{name: "reversed parens", in: "1 )systemd( S 0", wantErr: errBadStat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStat([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parseStat(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStat(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	for _, s := range []string{
		"1 (systemd) S 0 1 1 0 -1 4194560 1",
		"4242 (systemd) S 4240 4242 4242 0 -1 4194560 1000 0 0 0 5 3 0 0 20 0 1 0 987654 170000000 3000 18446744073709551615",
		"42 (a (b) c) R 7 42 42",
		"5 () S 4",
		"",
		"1 )x( S 0",
		"99999999999999999999 (x) S 1",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fuzzwatch.Start()()
		st, err := parseStat(b)
		if err != nil {
			if !errors.Is(err, errBadStat) {
				t.Fatalf("parseStat error %v does not wrap errBadStat", err)
			}
			return
		}
		if st.pid <= 0 || st.ppid < 0 {
			t.Fatalf("parseStat(%q) = %+v: accepted a non-positive pid or negative ppid", b, st)
		}
		if !strings.Contains(string(b), "("+st.comm+")") {
			t.Fatalf("parseStat(%q) comm %q is not the parenthesized field", b, st.comm)
		}
	})
}

func TestMachineName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix, test string
		want         string
	}{
		{test: "TestScenarios/install_v1", want: "testscenarios-install-v1-123-4"},
		{prefix: "Demo", test: "ignored", want: "demo-123-4"},
		{test: "///", want: "nspawn-123-4"},
		{test: strings.Repeat("a", 100), want: strings.Repeat("a", maxMachineName-len("-123-4")) + "-123-4"},
		{test: strings.Repeat("ab-", 30), want: strings.TrimRight(strings.Repeat("ab-", 30)[:maxMachineName-len("-123-4")], "-") + "-123-4"},
	}
	for _, tt := range tests {
		got := machineName(tt.prefix, tt.test, 123, 4)
		if got != tt.want {
			t.Errorf("machineName(%q, %q) = %q, want %q", tt.prefix, tt.test, got, tt.want)
		}
		if len(got) > maxMachineName {
			t.Errorf("machineName(%q, %q) is %d characters, more than %d", tt.prefix, tt.test, len(got), maxMachineName)
		}
	}
}

func TestFindCgroup2(t *testing.T) {
	t.Parallel()
	hybrid := "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
	pure := "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n"
	legacy := "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
	elsewhere := "cgroup2 /mnt/cg cgroup2 rw 0 0\n"
	for _, tt := range []struct {
		name, mounts, want string
		wantErr            bool
	}{
		{name: "hybrid", mounts: hybrid, want: "/sys/fs/cgroup/unified"},
		{name: "pure v2", mounts: pure, want: "/sys/fs/cgroup"},
		{name: "v1 only", mounts: legacy, wantErr: true},
		{name: "v2 elsewhere", mounts: elsewhere, wantErr: true},
	} {
		got, err := findCgroup2(tt.mounts)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: findCgroup2 = %q, %v; want %q, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestAvailableMissingTarball(t *testing.T) {
	t.Parallel()
	err := availableWith(filepath.Join(t.TempDir(), "missing.tar.zst"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("availableWith(missing tarball) = %v, want ErrUnavailable", err)
	}
}

// TestBoot boots two containers in parallel and checks what the suites rely
// on: systemd is PID 1 inside, files written under Root appear inside, the
// host network is shared, the containers are separate, and the journal is
// readable. Skipped unless the harness is available (root + cached rootfs).
func TestBoot(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("Real-systemd harness not available: %v", err)
	}
	for i := range 2 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			c := Boot(ctx, t, Options{Prepare: func(root string) error {
				return os.WriteFile(filepath.Join(root, "etc/prepared"), []byte("yes"), 0o644)
			}})

			mustExec := func(args ...string) string {
				t.Helper()
				out, errOut, err := c.Exec(ctx, args...)
				if err != nil {
					t.Fatalf("Exec %q: %v\nstderr: %s", args, err, errOut)
				}
				return strings.TrimSpace(string(out))
			}
			if got := mustExec("cat", "/proc/1/comm"); got != "systemd" {
				t.Errorf("PID 1 inside is %q, want systemd", got)
			}
			if got := mustExec("cat", "/etc/prepared"); got != "yes" {
				t.Errorf("file written by Prepare reads %q inside, want yes", got)
			}
			marker := "marker-" + c.Name()
			if err := os.WriteFile(filepath.Join(c.Root(), "root/marker"), []byte(marker), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := mustExec("cat", "/root/marker"); got != marker {
				t.Errorf("file written under Root reads %q inside, want %q", got, marker)
			}
			if got := mustExec("hostname"); got != c.Name() {
				t.Errorf("hostname inside is %q, want %q", got, c.Name())
			}
			hostNet, err := os.Readlink("/proc/self/ns/net")
			if err != nil {
				t.Fatal(err)
			}
			if got := mustExec("readlink", "/proc/self/ns/net"); got != hostNet {
				t.Errorf("network namespace inside is %s, want the host's %s", got, hostNet)
			}
			if _, _, err := c.Exec(ctx, "false"); err == nil {
				t.Error("Exec(false) returned no error")
			}
			if j := c.Journal("systemd-journald.service"); !strings.Contains(j, "journal") {
				t.Errorf("Journal(systemd-journald.service) has no journald lines:\n%s", j)
			}
		})
	}
}

// TestTeardown checks that the cleanup Boot registers leaves nothing behind:
// no nspawn process, no overlay mount, no cgroup, no directory.
func TestTeardown(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("Real-systemd harness not available: %v", err)
	}
	t.Parallel()
	var c *Container
	t.Run("boot", func(t *testing.T) {
		c = Boot(context.Background(), t, Options{})
	})
	if c == nil {
		t.Fatal("Boot returned no container")
	}
	b, _ := c.current()
	select {
	case <-b.done:
	default:
		t.Error("systemd-nspawn still running after cleanup")
	}
	if err := b.proc.Signal(syscall.Signal(0)); err == nil {
		t.Errorf("systemd-nspawn (PID %d) still exists after cleanup", b.proc.Pid)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), c.root) {
		t.Errorf("overlay %s still mounted after cleanup", c.root)
	}
	for _, p := range []string{c.dir, c.cgroup} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after cleanup (%v)", p, err)
		}
	}
}

// TestReboot checks that a rebooted container keeps what was written to its
// disk, starts enabled units again, and really booted anew.
func TestReboot(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("Real-systemd harness not available: %v", err)
	}
	t.Parallel()
	ctx := context.Background()
	const unit = "[Unit]\nDescription=test\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
	c := Boot(ctx, t, Options{Prepare: func(root string) error {
		if err := os.WriteFile(filepath.Join(root, "etc/systemd/system/sleeper.service"), []byte(unit), 0o644); err != nil {
			return err
		}
		return os.Symlink("/etc/systemd/system/sleeper.service", filepath.Join(root, "etc/systemd/system/multi-user.target.wants/sleeper.service"))
	}})
	read := func(args ...string) string {
		t.Helper()
		out, errOut, err := c.Exec(ctx, args...)
		if err != nil {
			t.Fatalf("Exec %q: %v\n%s", args, err, errOut)
		}
		return strings.TrimSpace(string(out))
	}
	// InvocationID is unique per run of a unit; a MainPID is not, since a
	// fresh PID namespace hands out the same numbers on every boot.
	invocationBefore := read("systemctl", "show", "-P", "InvocationID", "sleeper.service")
	leaderBefore := c.Leader()
	read("sh", "-c", "echo kept > /var/lib/marker && echo lost > /run/marker")

	if err := c.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Leader() == leaderBefore {
		t.Errorf("leader PID %d unchanged: the container did not boot again", leaderBefore)
	}
	if got := read("cat", "/var/lib/marker"); got != "kept" {
		t.Errorf("/var/lib/marker reads %q after reboot, want kept", got)
	}
	if _, _, err := c.Exec(ctx, "test", "-e", "/run/marker"); err == nil {
		t.Error("/run/marker survived the reboot")
	}
	if got := read("systemctl", "is-active", "sleeper.service"); got != "active" {
		t.Errorf("enabled sleeper.service is %q after reboot, want active", got)
	}
	if got := read("systemctl", "show", "-P", "InvocationID", "sleeper.service"); got == "" || got == invocationBefore {
		t.Errorf("sleeper.service InvocationID %q unchanged after reboot: it did not start again", got)
	}
}
