package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var testDate = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func testSpec(t *testing.T) Spec {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "teleport-update")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho teleport-update\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return Spec{
		Version: "1.2.3", Arch: "arm64", Binary: bin,
		ManPage: []byte(".TH TELEPORT-UPDATE 8\n.SH NAME\nteleport-update \\- updater\n"),
		Keys:    fstest.MapFS{"org.pem": {Data: []byte("-----BEGIN PUBLIC KEY-----\n")}},
		Date:    testDate,
	}
}

// tool runs a packaging tool of the distribution, which the test needs:
// under CI it must be installed (scripts/test.sh installs it).
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed", name)
		}
		t.Skipf("%s is not installed", name)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// listing turns `dpkg-deb -c` or `rpm -qlpv` output into "mode owner path"
// lines, sorted.
func listing(out string, deb bool) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			continue
		}
		owner, path := f[1], f[len(f)-1]
		if !deb {
			owner = f[2] + "/" + f[3]
		}
		path = strings.TrimSuffix(strings.TrimPrefix(path, "."), "/")
		lines = append(lines, f[0]+" "+owner+" "+path)
	}
	slices.Sort(lines)
	return lines
}

// want is what each package must hold: every file and the keys.d dir.
func want(unitDir string, deb bool) []string {
	w := []string{
		"-rwxr-xr-x root/root /usr/bin/teleport-update",
		"-rw-r--r-- root/root " + unitDir + "/teleport-update.service",
		"-rw-r--r-- root/root " + unitDir + "/teleport-update.timer",
		"-rw-r--r-- root/root /usr/share/man/man8/teleport-update.8.gz",
		"-rw-r--r-- root/root /usr/share/doc/teleport-update/copyright",
		"-rw-r--r-- root/root /usr/share/teleport-update/keys/org.pem",
		"drwxr-xr-x root/root /etc/teleport-update/keys.d",
	}
	if deb {
		w = append(w, "-rw-r--r-- root/root /usr/share/doc/teleport-update/changelog.Debian.gz",
			"-rw-r--r-- root/root /usr/share/lintian/overrides/teleport-update")
	}
	slices.Sort(w)
	return w
}

func TestDebContents(t *testing.T) {
	s := testSpec(t)
	out := t.TempDir()
	path, err := Build(s, "deb", out)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "teleport-update_1.2.3-1_arm64.deb" {
		t.Errorf("package name %s", filepath.Base(path))
	}
	var files []string
	for _, l := range listing(tool(t, "dpkg-deb", "-c", path), true) {
		if !strings.HasPrefix(l, "d") || strings.HasSuffix(l, "keys.d") {
			files = append(files, l)
		}
	}
	if w := want("/lib/systemd/system", true); !slices.Equal(files, w) {
		t.Errorf("deb holds\n%s\nwant\n%s", strings.Join(files, "\n"), strings.Join(w, "\n"))
	}
	info := tool(t, "dpkg-deb", "-I", path)
	for _, w := range []string{"Package: teleport-update", "Version: 1.2.3-1", "Architecture: arm64", "Section: admin", "starts and enables nothing"} {
		if !strings.Contains(info, w) {
			t.Errorf("control lacks %q:\n%s", w, info)
		}
	}
	// A package install must start and enable nothing: no maintainer
	// script at all.
	for _, script := range []string{"preinst", "postinst", "prerm", "postrm"} {
		if strings.Contains(info, " "+script) {
			t.Errorf("deb has a %s script:\n%s", script, info)
		}
	}
}

func TestRPMContents(t *testing.T) {
	s := testSpec(t)
	s.Arch = "amd64"
	path, err := Build(s, "rpm", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "teleport-update-1.2.3-1.x86_64.rpm" {
		t.Errorf("package name %s", filepath.Base(path))
	}
	if got, w := listing(tool(t, "rpm", "-qlpv", path), false), want("/usr/lib/systemd/system", false); !slices.Equal(got, w) {
		t.Errorf("rpm holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
	if scripts := tool(t, "rpm", "-qp", "--scripts", path); strings.TrimSpace(scripts) != "" {
		t.Errorf("rpm has scripts:\n%s", scripts)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Spec)
		want string
	}{
		"version": {func(s *Spec) { s.Version = "v1.2" }, "package version"},
		"arch":    {func(s *Spec) { s.Arch = "mips" }, `package architecture "mips"`},
		"keys":    {func(s *Spec) { s.Keys = fstest.MapFS{} }, "no built-in public keys"},
		"binary":  {func(s *Spec) { s.Binary = "/nonexistent/teleport-update" }, "/nonexistent/teleport-update"},
	} {
		t.Run(name, func(t *testing.T) {
			s := testSpec(t)
			tc.edit(&s)
			out := t.TempDir()
			_, err := Build(s, "deb", out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want an error naming %q", err, tc.want)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("a failed build left %v behind", left)
			}
		})
	}
}

// TestBuildIsReproducible builds the same spec twice: the same bytes.
func TestBuildIsReproducible(t *testing.T) {
	s := testSpec(t)
	var got [][]byte
	for range 2 {
		path, err := Build(s, "deb", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, data)
	}
	if string(got[0]) != string(got[1]) {
		t.Error("two builds of the same spec differ")
	}
}
