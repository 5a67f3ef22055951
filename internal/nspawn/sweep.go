package nspawn

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ownerFile, in each container's work dir, names the test process that
// booted it and the container's cgroup, so a later process can clean up
// after one that died without running its cleanups (e.g. go test -timeout
// or ^C: systemd-nspawn then powers off through Pdeathsig, but the overlay
// mount, the cgroup and the directory stay).
const ownerFile = "owner"

// workDirPrefix starts the name of every container work dir in os.TempDir().
const workDirPrefix = "nspawn-"

var sweepOnce sync.Once

// owner identifies a process across PID reuse: its PID and start time.
type owner struct {
	pid    int
	start  uint64
	cgroup string
}

func (o owner) String() string {
	return fmt.Sprintf("%d\n%d\n%s\n", o.pid, o.start, o.cgroup)
}

// parseOwner parses an owner file: PID, start time and cgroup path, one per line.
func parseOwner(b []byte) (owner, error) {
	f := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(f) != 3 {
		return owner{}, fmt.Errorf("owner file: want 3 lines, got %d", len(f))
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return owner{}, fmt.Errorf("owner file: bad pid %q", f[0])
	}
	start, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return owner{}, fmt.Errorf("owner file: bad start time %q", f[1])
	}
	if f[2] != "" && (!filepath.IsAbs(f[2]) || !strings.Contains(f[2], "/"+cgroupParent+"/")) {
		return owner{}, fmt.Errorf("owner file: cgroup %q is not one of ours", f[2])
	}
	return owner{pid: pid, start: start, cgroup: f[2]}, nil
}

// self returns the owner record of this process for cgroup.
func self(cgroup string) owner {
	o := owner{pid: os.Getpid(), cgroup: cgroup}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		if st, err := parseStat(b); err == nil {
			o.start = st.start
		}
	}
	return o
}

// alive reports whether the process o names is still running.
func (o owner) alive() bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(o.pid), "stat"))
	if err != nil {
		return false
	}
	st, err := parseStat(b)
	return err == nil && st.start == o.start
}

// sweep removes the work dirs of containers whose owning process is gone.
// A dir whose overlay is still busy (its nspawn still running) is left alone.
func sweep(logf func(format string, args ...any)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), workDirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or still being created
		}
		o, err := parseOwner(b)
		if err != nil || o.alive() {
			continue
		}
		merged := filepath.Join(dir, "merged")
		if err := unmountIdle(merged); err != nil {
			logf("Leaving container dir %s of dead process %d: %v", dir, o.pid, err)
			continue
		}
		if o.cgroup != "" {
			if err := removeCgroup(o.cgroup); err != nil {
				logf("Leaving cgroup %s of dead process %d: %v", o.cgroup, o.pid, err)
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			logf("Removing container dir %s of dead process %d: %v", dir, o.pid, err)
			continue
		}
		logf("Removed container dir %s left by dead process %d.", dir, o.pid)
	}
}
