package releasetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
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
