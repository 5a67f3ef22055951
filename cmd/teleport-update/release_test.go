package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/updater/download"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestReleaseCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	priv, pub := filepath.Join(keys, "release.key"), filepath.Join(keys, "release.pub")
	a := filepath.Join(dir, "teleport-v1.2.3-linux-amd64-bin.tar.gz")
	b := filepath.Join(dir, "teleport-update-v1.2.3-linux-amd64-bin.tar.gz")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte("artifact "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Steps run in order; each depends on the files the previous ones wrote.
	steps := []struct {
		name       string
		args       []string
		before     func(t *testing.T)
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "release without subcommand", args: []string{"release"}, wantCode: exitUsage, wantStderr: "missing subcommand"},
		{name: "keygen without --out", args: []string{"release", "keygen"}, wantCode: exitUsage, wantStderr: "--out"},
		{name: "keygen", args: []string{"release", "keygen", "--out", keys}, wantCode: exitOK, wantStdout: "Key hint:"},
		{name: "keygen refuses to overwrite", args: []string{"release", "keygen", "--out", keys}, wantCode: exitFailure, wantStderr: "already exists"},
		{name: "sign without files", args: []string{"release", "sign", "--key", priv}, wantCode: exitUsage, wantStderr: "no files"},
		{name: "sign without key", args: []string{"release", "sign", a}, wantCode: exitUsage, wantStderr: "--key"},
		{name: "sign two files", args: []string{"release", "sign", "--key", priv, a, b}, wantCode: exitOK, wantStdout: "Signed " + b},
		{name: "sign with the public key", args: []string{"release", "sign", "--key", pub, a}, wantCode: exitFailure, wantStderr: "invalid private key file"},
		{name: "verify a", args: []string{"release", "verify", "--key", pub, a}, wantCode: exitOK, wantStdout: "Verified OK: " + filepath.Base(a)},
		{name: "verify b", args: []string{"release", "verify", "--key", pub, b}, wantCode: exitOK, wantStdout: "Verified OK: " + filepath.Base(b)},
		{name: "verify two files", args: []string{"release", "verify", "--key", pub, a, b}, wantCode: exitUsage, wantStderr: "exactly one"},
		{name: "verify with private key", args: []string{"release", "verify", "--key", priv, a}, wantCode: exitFailure, wantStderr: "PEM block type"},
		{
			name: "verify tampered artifact",
			args: []string{"release", "verify", "--key", pub, a},
			before: func(t *testing.T) {
				if err := os.WriteFile(a, []byte("tampered"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantCode: exitFailure, wantStderr: "does not match the signed checksum",
		},
		{
			name: "verify checksum of another file",
			args: []string{"release", "verify", "--key", pub, a},
			before: func(t *testing.T) {
				for _, s := range []string{".sha256", ".sha256.sigstore.json"} {
					data, err := os.ReadFile(b + s)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(a+s, data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			},
			wantCode: exitFailure, wantStderr: "checksum file names a different file",
		},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before(t)
		}
		code, stdout, stderr := runCLI(t, s.args...)
		if code != s.wantCode || !strings.Contains(stdout, s.wantStdout) || !strings.Contains(stderr, s.wantStderr) {
			t.Errorf("%s: %v\n exit %d (want %d)\n stdout %q (want %q)\n stderr %q (want %q)",
				s.name, s.args, code, s.wantCode, stdout, s.wantStdout, stderr, s.wantStderr)
		}
	}
	for _, f := range []string{a, b} {
		for _, s := range []string{".sha256", ".sha256.sigstore.json", ".sha256.sig"} {
			if _, err := os.Stat(f + s); err != nil {
				t.Errorf("missing %s: %v", f+s, err)
			}
		}
	}
}

// TestReleaseSignVerifyEveryBuild: release sign and verify handle the file
// names of every build Teleport publishes (community, Enterprise, FIPS), and
// what they write is what the agent fetches for that build: the checksum
// line names exactly the artifact name the agent builds.
func TestReleaseSignVerifyEveryBuild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if code, _, stderr := runCLI(t, "release", "keygen", "--out", keys); code != exitOK {
		t.Fatalf("keygen: %s", stderr)
	}
	v := semver.MustParse("16.4.6")
	for _, fl := range []download.Flavour{{}, {Enterprise: true}, {Enterprise: true, FIPS: true}} {
		a := download.Artifact{Product: download.ProductTeleport, Version: v, OS: "linux", Arch: "arm64", Edition: fl.Edition(), FIPS: fl.FIPS}
		f := filepath.Join(dir, a.TarballName())
		if err := os.WriteFile(f, []byte("release "+fl.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runCLI(t, "release", "sign", "--key", filepath.Join(keys, "release.key"), f); code != exitOK {
			t.Fatalf("sign %s: %s", a.TarballName(), stderr)
		}
		if code, stdout, stderr := runCLI(t, "release", "verify", "--key", filepath.Join(keys, "release.pub"), f); code != exitOK || !strings.Contains(stdout, "Verified OK: "+a.TarballName()) {
			t.Fatalf("verify %s: exit %d %s %s", a.TarballName(), code, stdout, stderr)
		}
		sum, err := os.ReadFile(filepath.Join(dir, a.ChecksumName()))
		if err != nil || !strings.HasSuffix(string(sum), "  "+a.TarballName()+"\n") {
			t.Errorf("%s: %q, %v; want a line naming %s", a.ChecksumName(), sum, err, a.TarballName())
		}
		for _, name := range []string{a.BundleName(), a.SignatureName()} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}
