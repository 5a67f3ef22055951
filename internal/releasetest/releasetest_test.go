package releasetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBuildAgent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		version, mode string
		startCode     int // exit code of "teleport start" when it ends by itself
	}{
		{version: "1.2.3", mode: ModeOK, startCode: -1}, // runs until stopped
		{version: "3.0.0-rc.1", mode: ModeExit, startCode: 1},
	}
	for _, tt := range tests {
		p := BuildAgent(t, dir, tt.version, tt.mode)
		if got, want := filepath.Base(p), "teleport-v"+tt.version+"-linux-"+runtime.GOARCH+"-bin.tar.gz"; got != want {
			t.Errorf("tarball name %q, want %q", got, want)
		}
		entries := readTarball(t, p)
		var names []string
		for _, e := range entries {
			names = append(names, e.hdr.Name)
			if e.hdr.Mode != 0o755 {
				t.Errorf("%s: entry %s mode %o, want 755", p, e.hdr.Name, e.hdr.Mode)
			}
		}
		if got, want := strings.Join(names, " "), "bin/ bin/tctl bin/teleport"; got != want {
			t.Errorf("%s: entries %q, want %q", p, got, want)
		}

		// Run the packed binary itself, as the updater would.
		exe := filepath.Join(t.TempDir(), "teleport")
		if err := os.WriteFile(exe, entries[2].data, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(exe, "version").Output()
		if err != nil {
			t.Fatalf("%s version: %v", exe, err)
		}
		if got, want := string(out), "Teleport v"+tt.version+" git:test go1.26\n"; got != want {
			t.Errorf("version printed %q, want %q", got, want)
		}
		if tt.startCode >= 0 {
			err := exec.Command(exe, "start").Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tt.startCode {
				t.Errorf("mode %s: start returned %v, want exit code %d", tt.mode, err, tt.startCode)
			}
		}
	}
}

func TestBuildIsReproducible(t *testing.T) {
	t.Parallel()
	a := BuildAgent(t, t.TempDir(), "2.0.0", ModeCrash)
	b := BuildAgent(t, t.TempDir(), "2.0.0", ModeCrash)
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Error("two builds of the same release differ")
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, a := range []Agent{
		{Version: "", Mode: ModeOK},
		{Version: "v1.2.3", Mode: ModeOK},
		{Version: "1.2.3 -X main.mode=exit", Mode: ModeOK},
		{Version: "../1.2.3", Mode: ModeOK},
		{Version: "1.2.3", Mode: "sideways"},
		{Version: "1.2.3", Mode: ModeCrash, CrashAfter: -time.Second},
		{Version: "1.2.3", Mode: ModeOK, GOARCH: "amd64 -o /etc"},
	} {
		_, err := a.Build(t.Context(), t.TempDir())
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Build(%+v) = %v, want ErrInvalid", a, err)
		}
	}
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func readTarball(t *testing.T, path string) []entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(gz)
	var out []entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{hdr, data})
	}
}

func TestScriptRelease(t *testing.T) {
	t.Parallel()
	for _, broken := range []bool{false, true} {
		data, err := ScriptRelease("2.0.0", broken)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), MustArtifact("2.0.0", "amd64").TarballName())
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		entries := readTarball(t, p)
		var names []string
		for _, e := range entries {
			names = append(names, e.hdr.Name)
		}
		if got, want := strings.Join(names, " "), "bin/ bin/tctl bin/teleport"; got != want {
			t.Errorf("entries %q, want %q", got, want)
		}
		exe := filepath.Join(t.TempDir(), "teleport")
		if err := os.WriteFile(exe, entries[2].data, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(exe, "version").Output()
		switch {
		case broken && err == nil:
			t.Errorf("broken script: version succeeded with %q", out)
		case !broken && (err != nil || string(out) != "Teleport v2.0.0 git:fixture go1.26\n"):
			t.Errorf("script: version = %q, %v", out, err)
		}
	}
}

func TestMustArtifact(t *testing.T) {
	t.Parallel()
	if got, want := MustArtifact("1.2.3-rc.1", "arm64").TarballName(), "teleport-v1.2.3-rc.1-linux-arm64-bin.tar.gz"; got != want {
		t.Errorf("TarballName = %q, want %q", got, want)
	}
	for _, bad := range [][2]string{{"v1.2.3", "amd64"}, {"1.2.3", "amd64/.."}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("MustArtifact(%q, %q) did not panic", bad[0], bad[1])
				}
			}()
			MustArtifact(bad[0], bad[1])
		}()
	}
}

// The script agent hands over on SIGHUP to the script its link now points
// at: the new process writes the PID file and the old one exits.
func TestScriptHandover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if err := os.WriteFile(filepath.Join(dir, v), []byte(Script(v, false)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link, pidFile := filepath.Join(dir, "teleport"), filepath.Join(dir, "teleport.pid")
	relink := func(v string) {
		os.Remove(link + ".new")
		if err := os.Symlink(v, link+".new"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link+".new", link); err != nil {
			t.Fatal(err)
		}
	}
	readPID := func() int {
		b, _ := os.ReadFile(pidFile)
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	relink("1.0.0")
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(link, "start", "--config", "/etc/teleport.yaml", "--pid-file="+pidFile)
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	old := cmd.Process.Pid
	waitUntil(t, func() bool { return readPID() == old })

	relink("2.0.0")
	cmd.Process.Signal(syscall.SIGHUP)
	if err := cmd.Wait(); err != nil {
		t.Errorf("the old process exited with %v after the handover, want 0", err)
	}
	waitUntil(t, func() bool { return readPID() != old })
	pid := readPID()
	defer syscall.Kill(pid, syscall.SIGTERM)
	if syscall.Kill(pid, 0) != nil {
		t.Fatalf("the new process %d is not running", pid)
	}
	waitUntil(t, func() bool {
		b, _ := os.ReadFile(out.Name())
		return strings.Contains(string(b), fmt.Sprintf("Teleport v2.0.0 started (pid %d)", pid))
	})
}

// waitUntil polls cond; the limit only bounds a broken run.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

func TestUpdaterBuildRefusesBadInput(t *testing.T) {
	for _, u := range []Updater{{Version: "latest"}, {Version: "1.0.0 -X main.failSetup=1"}, {Version: "1.0.0", GOARCH: "amd64 -race"}} {
		if _, err := u.Build(t.Context(), t.TempDir()); !errors.Is(err, ErrInvalid) {
			t.Errorf("Build(%+v) = %v, want ErrInvalid", u, err)
		}
	}
}
