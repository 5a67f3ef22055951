package proxyapi

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/gravitational/teleport-update/api"
)

// TestWatchNeverServesHalfWrittenPolicy saves a new policy in place, the
// way a plain editor does, and lets the watcher look while only a prefix
// is on disk. Each prefix is itself a valid policy (or for the last one,
// an invalid one) that would misdirect hosts: production falls back to
// staging's window, or gets a window half an hour short. Each call of
// reload(true) is one tick of the watcher.
func TestWatchNeverServesHalfWrittenPolicy(t *testing.T) {
	t.Parallel()
	full := strings.Replace(policyWith("16.4.10"), "duration: 2h", "duration: 2h30m", 1)
	prefixes := map[string]string{
		"one group of two":      full[:strings.Index(full, "      - name: production")],
		"2h30m cut to 2h":       strings.TrimSuffix(full, "30m\n"),
		"16.4.10 cut to 16.4.1": full[:strings.Index(full, "16.4.10")+len("16.4.1")],
	}
	for name, prefix := range prefixes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			served := func() string {
				t.Helper()
				_, _, body := e.do(t, "GET", api.FindPath+"?group=production", nil, nil)
				return string(body)
			}
			old := served()
			look := func(step, want string) {
				t.Helper()
				if err := e.s.reload(true); err != nil {
					t.Fatalf("%s: look = %v", step, err)
				}
				if got := served(); got != want {
					t.Fatalf("%s: find serves\n%s\nwant\n%s", step, got, want)
				}
			}
			if err := os.WriteFile(e.policy, []byte(prefix), 0o600); err != nil {
				t.Fatal(err)
			}
			look("prefix on disk", old)
			if err := os.WriteFile(e.policy, []byte(full), 0o600); err != nil {
				t.Fatal(err)
			}
			look("first look at the complete file", old)
			if err := e.s.reload(true); err != nil {
				t.Fatal(err)
			}
			if got := served(); got == old || !strings.Contains(got, `"agent_version":"16.4.10"`) || !strings.Contains(got, "T06:30:00Z") {
				t.Fatalf("second look at the complete file: find serves %s; want 16.4.10 with the 2h30m window", got)
			}
			if r, j := counterValue(t, e.s.metrics.reloads), counterValue(t, e.s.metrics.rejects); r != 1 || j != 0 {
				t.Errorf("reloads %v, rejects %v; want 1 and 0", r, j)
			}
		})
	}
}

// TestReloadIsImmediate: Reload (SIGHUP) does not wait for a second look;
// the operator says the file is complete.
func TestReloadIsImmediate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if err := os.WriteFile(e.policy, []byte(policyWith("16.4.10")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, fr := e.find(t, "?group=staging"); fr.AutoUpdate.AgentVersion != "16.4.10" {
		t.Errorf("find after Reload = %+v; want 16.4.10 at once", fr)
	}
}

// TestReloadRefusesFIFO: a named pipe at the policy path is refused at
// once, by Reload and by the watcher, instead of blocking the read until a
// writer comes (which would hold the reload lock for good).
func TestReloadRefusesFIFO(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if err := os.Remove(e.policy); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(e.policy, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { releaseFIFOReaders(e.policy) })
	err := e.s.Reload()
	if err == nil || !strings.Contains(err.Error(), "named pipe") || !strings.Contains(err.Error(), e.policy) {
		t.Fatalf("Reload(FIFO) = %v; want an error naming the path and the named pipe", err)
	}
	_ = e.s.reload(true)
	_ = e.s.reload(true)
	if _, fr := e.find(t, "?group=staging"); fr.AutoUpdate.AgentVersion != "16.4.6" {
		t.Errorf("find = %+v; want the last good policy", fr)
	}
	if _, _, err := LoadPolicy(e.policy); err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("LoadPolicy(FIFO) = %v; want a named-pipe error", err)
	}
}

// releaseFIFOReaders opens the pipe at path for writing without blocking
// and closes it, so a reader stuck in open gets EOF (when the code under
// test regressed to blocking reads) and the test can end.
func releaseFIFOReaders(path string) {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return // no reader waiting
	}
	f.Close()
}
