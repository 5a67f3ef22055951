package nspawn

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

func TestParseOwner(t *testing.T) {
	t.Parallel()
	cg := "/sys/fs/cgroup/unified/" + cgroupParent + "/x-1-1"
	tests := []struct {
		name    string
		in      string
		want    owner
		wantErr bool
	}{
		{name: "full", in: "12\n345\n" + cg + "\n", want: owner{pid: 12, start: 345, cgroup: cg}},
		{name: "no cgroup", in: "12\n345\n\n", want: owner{pid: 12, start: 345}},
		{name: "round trip", in: owner{pid: 7, start: 8, cgroup: cg}.String(), want: owner{pid: 7, start: 8, cgroup: cg}},
		{name: "foreign cgroup", in: "12\n345\n/sys/fs/cgroup/unified/system.slice\n", wantErr: true},
		{name: "relative cgroup", in: "12\n345\nx/" + cgroupParent + "/y\n", wantErr: true},
		{name: "bad pid", in: "-1\n345\n\n", wantErr: true},
		{name: "bad start", in: "12\nsoon\n\n", wantErr: true},
		{name: "short", in: "12\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseOwner([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: parseOwner(%q) = %+v, %v; want %+v, error %v", tt.name, tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseOwner(f *testing.F) {
	f.Add([]byte("12\n345\n/sys/fs/cgroup/unified/" + cgroupParent + "/x-1-1\n"))
	f.Add([]byte("12\n345\n\n"))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte("1\n2\n/../" + cgroupParent + "/../../etc\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fuzzwatch.Start()()
		o, err := parseOwner(b)
		if err != nil {
			return
		}
		if o.pid <= 0 {
			t.Fatalf("parseOwner(%q) accepted pid %d", b, o.pid)
		}
		if o.cgroup != "" && (!filepath.IsAbs(o.cgroup) || !strings.Contains(o.cgroup, "/"+cgroupParent+"/")) {
			t.Fatalf("parseOwner(%q) accepted cgroup %q outside ours", b, o.cgroup)
		}
	})
}

func TestOwnerAlive(t *testing.T) {
	t.Parallel()
	me := self("")
	if me.start == 0 || !me.alive() {
		t.Fatalf("self() = %+v is not alive", me)
	}
	reused := me
	reused.start++ // same PID, another process
	if reused.alive() {
		t.Error("an owner with our PID but another start time counts as alive")
	}
}

// TestSweepAfterKilledOwner boots a container in a child test process that
// then dies by SIGKILL without running its cleanups, and checks that sweep
// removes what it left: the overlay mount, the cgroup and the directory.
func TestSweepAfterKilledOwner(t *testing.T) {
	if os.Getenv("NSPAWN_LEAK_HELPER") == "1" {
		c := Boot(context.Background(), t, Options{Name: "leak"})
		os.Stdout.WriteString("DIR=" + c.dir + "\n")
		syscall.Kill(os.Getpid(), syscall.SIGKILL) //nolint:errcheck // dies here
		select {}
	}
	if err := Available(); err != nil {
		t.Skipf("Real-systemd harness not available: %v", err)
	}
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSweepAfterKilledOwner$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NSPAWN_LEAK_HELPER=1", "TMPDIR="+tmp)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper process ended with %v, want SIGKILL\n%s", err, out)
	}
	_, dir, ok := strings.Cut(strings.TrimSpace(string(out)), "DIR=")
	if !ok || !strings.HasPrefix(dir, tmp) {
		t.Fatalf("helper printed no container dir under %s:\n%s", tmp, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		t.Fatalf("leaked container has no owner file: %v", err)
	}
	o, err := parseOwner(b)
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv("TMPDIR", tmp) // sweep only this test's leftovers
	deadline := time.Now().Add(stopTimeout)
	for {
		sweep(t.Logf) // the nspawn of the dead helper may still be powering off
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			break
		}
		time.Sleep(pollInterval)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sweep left %s (%v)", dir, err)
	}
	if _, err := os.Stat(o.cgroup); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sweep left cgroup %s (%v)", o.cgroup, err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Errorf("sweep left the overlay under %s mounted", dir)
	}
}
