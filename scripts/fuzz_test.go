package scripts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

// scriptFuncs returns the rendered script without its final `main "$@"`
// call, followed by a line that calls the function named by the first
// argument: `bash -s -- FUNC ARGS...` then runs one function of install.sh.
func scriptFuncs(t testing.TB, d scriptData) []byte {
	t.Helper()
	script := render(t, d)
	last := bytes.LastIndex(script, []byte("\nmain \"$@\""))
	if last < 0 {
		t.Fatal("rendered script has no final main call")
	}
	return append(script[:last+1:last+1], "\"$@\"\n"...)
}

// callFunc runs one install.sh function in bash and returns its exit code
// and stderr.
func callFunc(t testing.TB, funcs []byte, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"-s", "--"}, args...)...)
	cmd.Stdin = bytes.NewReader(funcs)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("run bash: %v", err)
	return 0, ""
}

// FuzzVerifyChecksum feeds install.sh's checksum check arbitrary checksum
// files (as if validly signed): it must accept exactly the one line
// "<sha256 of the tarball>  <tarball name>\n" and refuse everything else.
func FuzzVerifyChecksum(f *testing.F) {
	dir := f.TempDir()
	name := updaterTarballName(testVersion, "amd64")
	tarball := filepath.Join(dir, name)
	if err := os.WriteFile(tarball, []byte("not really a tarball"), 0o644); err != nil {
		f.Fatal(err)
	}
	sum := sha256.Sum256([]byte("not really a tarball"))
	good := hex.EncodeToString(sum[:]) + "  " + name + "\n"
	funcs := scriptFuncs(f, scriptData{ProxyAddr: "proxy.example.com", Version: testVersion, PublicKey: "-----BEGIN PUBLIC KEY-----"})

	f.Add([]byte(good))
	f.Add([]byte(strings.TrimSuffix(good, "\n")))
	f.Add([]byte(good + good))
	f.Add([]byte(good + "trailing"))
	f.Add([]byte(strings.Replace(good, "  ", " *", 1)))
	f.Add([]byte(strings.ToUpper(good[:64]) + good[64:]))
	f.Add([]byte(strings.Replace(good, "\n", "\x00\n", 1)))
	f.Add([]byte(strings.Replace(good, name, name+" ", 1)))
	f.Add([]byte(strings.Replace(good, name, "./"+name, 1)))
	f.Add([]byte("\n" + good))
	f.Add([]byte(good[:10] + "\r\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		sumfile := filepath.Join(t.TempDir(), "sum")
		if err := os.WriteFile(sumfile, data, 0o644); err != nil {
			t.Fatal(err)
		}
		code, stderr := callFunc(t, funcs, nil, "verify_checksum", sumfile, tarball, name)
		accepted := code == 0
		if want := string(data) == good; accepted != want {
			t.Fatalf("verify_checksum(%q) accepted=%v, want %v; stderr:\n%s", data, accepted, want, stderr)
		}
		if !accepted && (code != 1 || !strings.Contains(stderr, "ERROR:")) {
			t.Fatalf("verify_checksum(%q) refused without a clear message: exit %d, stderr %q", data, code, stderr)
		}
	})
}

// quoteInside escapes s for the inside of a single-quoted shell string the
// way the proxy does when it renders install.sh.
func quoteInside(s string) string {
	return strings.ReplaceAll(s, "'", `'\''`)
}

// FuzzFilledValues renders install.sh with arbitrary proxy-filled values
// (escaped as the proxy escapes them) and runs its input checks: no value
// may ever execute as code, and only well-formed values pass.
func FuzzFilledValues(f *testing.F) {
	f.Add("proxy.example.com:443", "staging", "1.2.3", "https://cdn.example.com")
	f.Add("[::1]:3080", "", "16.4.6-rc.1+build.5", "")
	f.Add("x'; touch PWNED; '", "$(touch PWNED)", "1.2.3`touch PWNED`", "https://a/'$(touch PWNED)'")
	f.Add("a\nb", "g\x00", "1.2.3\n", "http://cdn")
	f.Add("proxy", "a b", "v1.2.3", "https://cdn/\\'")
	f.Fuzz(func(t *testing.T, proxy, group, version, base string) {
		defer fuzzwatch.Start()()
		if strings.ContainsRune(proxy+group+version+base, 0) {
			t.Skip("text/template output cannot hold NUL in a bash script; the proxy validates values first")
		}
		dir := t.TempDir()
		funcs := scriptFuncs(t, scriptData{
			ProxyAddr: quoteInside(proxy),
			Group:     quoteInside(group),
			Version:   quoteInside(version),
			BaseURL:   quoteInside(base),
			PublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
		})
		// Run the checks from dir, so a relative "touch PWNED" lands there.
		cmd := exec.Command("bash", "-s", "--", "check_inputs_and_print")
		cmd.Stdin = bytes.NewReader(append(bytes.TrimSuffix(funcs, []byte("\"$@\"\n")), checkAndPrint...))
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		entries, rerr := os.ReadDir(dir)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if len(entries) != 0 {
			t.Fatalf("filled values executed code: %s appeared (proxy %q group %q version %q base %q)", entries[0].Name(), proxy, group, version, base)
		}
		if err != nil {
			if !strings.Contains(stderr.String(), "ERROR:") {
				t.Fatalf("refused without a clear message: %v, stderr %q", err, stderr.String())
			}
			return
		}
		// Accepted: the values reached bash unchanged and are well formed.
		lines := strings.Split(stdout.String(), "\n")
		if len(lines) < 4 {
			t.Fatalf("unexpected output %q", stdout.String())
		}
		if wantBase := strings.TrimSuffix(base, "/"); wantBase != "" && lines[0] != wantBase {
			t.Errorf("base_url printed %q, want %q", lines[0], wantBase)
		}
		if lines[1] != proxy || lines[2] != group || lines[3] != version {
			t.Errorf("values changed on the way into bash: got %q, want %q %q %q", lines[1:4], proxy, group, version)
		}
		if !validHostPort(proxy) || !validGroup(group) || !validVersion(version) || (base != "" && !validBase(base)) {
			t.Errorf("accepted malformed values: proxy %q group %q version %q base %q", proxy, group, version, base)
		}
	})
}

// checkAndPrint runs install.sh's input checks and prints the values as
// bash sees them, one a line: base URL, proxy, group, version.
var checkAndPrint = []byte(`check_inputs
base_url
printf '%s\n%s\n%s\n' "$PROXY_ADDR" "$GROUP" "$VERSION"
`)

func validBase(s string) bool {
	rest, ok := strings.CutPrefix(s, "https://")
	host, path, _ := strings.Cut(rest, "/")
	return ok && validHostPort(host) &&
		strings.Trim(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~%/+-") == ""
}

func validHostPort(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:[]-") == ""
}

func validGroup(s string) bool {
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
}

func validVersion(s string) bool {
	core, _, _ := strings.Cut(s, "-")
	core, _, _ = strings.Cut(core, "+")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return !strings.ContainsAny(s, " \t\n'\"$`;/\\")
}
