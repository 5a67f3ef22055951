package scripts

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

const testVersion = "1.2.3"

// scriptData mirrors the fields the proxy fills into install.sh.
type scriptData struct {
	ProxyAddr string
	Group     string
	Version   string
	BaseURL   string
	PublicKey string
}

// render executes the install.sh template the way the proxy does.
func render(t testing.TB, d scriptData) []byte {
	t.Helper()
	tmpl, err := template.New("install.sh").Option("missingkey=error").Parse(string(InstallSH))
	if err != nil {
		t.Fatalf("parse install.sh template: %v", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, d); err != nil {
		t.Fatalf("render install.sh: %v", err)
	}
	return buf.Bytes()
}

func TestShellcheck(t *testing.T) {
	path, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shellcheck is required in CI: %v", err)
		}
		t.Skip("SKIPPING shellcheck of install.sh: shellcheck is not installed (apt-get install -y shellcheck)")
	}
	// The template itself, as committed: every {{...}} sits inside quotes,
	// so it must parse and pass as it is.
	out, err := exec.Command(path, "--shell=bash", "install.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck install.sh: %v\n%s", err, out)
	}
	// And a rendered copy, with a multi-line PEM key filled in.
	rendered := filepath.Join(t.TempDir(), "install.sh")
	key := newSigner(t)
	script := render(t, scriptData{ProxyAddr: "proxy.example.com:443", Group: "staging", Version: testVersion, PublicKey: key.publicPEM})
	if err := os.WriteFile(rendered, script, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(path, "--shell=bash", rendered).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck rendered install.sh: %v\n%s", err, out)
	}
}

func TestTemplateStructure(t *testing.T) {
	s := string(InstallSH)
	if !strings.HasPrefix(s, "#!/usr/bin/env bash\n") {
		t.Errorf("install.sh must start with #!/usr/bin/env bash")
	}
	if !strings.Contains(s, "\nset -euo pipefail\n") {
		t.Errorf("install.sh must set -euo pipefail")
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if last := lines[len(lines)-1]; last != `main "$@"` {
		t.Errorf("last line = %q, want main \"$@\"", last)
	}
	// Every template action must sit inside single quotes of a readonly
	// assignment, so values cannot become code.
	for i, line := range lines {
		if !strings.Contains(line, "{{") {
			continue
		}
		if !strings.HasPrefix(line, "readonly ") || !strings.Contains(line, "='{{") || !strings.HasSuffix(line, "}}'") {
			t.Errorf("line %d: template action outside a single-quoted readonly assignment: %q", i+1, line)
		}
	}
}

// signer is a throwaway release key; it signs with the project's release
// package, so the script is tested against exactly what `release sign` writes.
type signer struct {
	key       *ecdsa.PrivateKey
	publicPEM string
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	privPath, pubPath, err := release.GenerateKey(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := release.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, publicPEM: string(pub)}
}

// sign writes path.sha256 naming base(path), its bundle and path.sha256.sig.
func (s *signer) sign(t *testing.T, path string) {
	t.Helper()
	if err := release.Sign(s.key, path); err != nil {
		t.Fatal(err)
	}
}

// signChecksum writes line as path.sha256 and signs it, whatever it says.
func (s *signer) signChecksum(t *testing.T, path string, line []byte) {
	t.Helper()
	bundle, sig, err := release.SignChecksum(s.key, line)
	if err != nil {
		t.Fatal(err)
	}
	for suffix, data := range map[string][]byte{
		release.ChecksumSuffix:  line,
		release.BundleSuffix:    bundle,
		release.SignatureSuffix: []byte(base64.StdEncoding.EncodeToString(sig)),
	} {
		if err := os.WriteFile(path+suffix, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hostArch is what install.sh derives from uname -m on this machine.
func hostArch(t *testing.T) string {
	t.Helper()
	switch runtime.GOARCH {
	case "amd64", "arm64":
		return runtime.GOARCH
	}
	t.Skipf("install.sh supports amd64 and arm64 only, this is %s", runtime.GOARCH)
	return ""
}

// updaterTarballName is the CDN name of the updater's linux/arch release.
func updaterTarballName(version, arch string) string {
	a, err := download.NewArtifact(download.ProductUpdater, version, "linux", arch)
	if err != nil {
		panic(err) // the tests' own constants
	}
	return a.TarballName()
}

// writeTarball packs files (archive path → content, all executable) into a
// gzipped tarball at path.
func writeTarball(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	if err := fixture.WriteTarball(path, files); err != nil {
		t.Fatal(err)
	}
}

// fakeUpdater records its arguments (one per line) and the install-method
// variable in $FAKE_RECORD, instead of installing anything.
const fakeUpdater = `#!/bin/sh
{
  prev=
  for a in "$@"; do
    if [ "$prev" = --token-file ]; then
      printf 'arg=<token-file>\ntoken-file=%s mode=%s\n' "$(cat "$a")" "$(stat -c %a "$a")"
    else
      printf 'arg=%s\n' "$a"
    fi
    prev=$a
  done
  printf 'env=TELEPORT_INSTALL_METHOD_NODE_SCRIPT=%s\n' "${TELEPORT_INSTALL_METHOD_NODE_SCRIPT:-}"
} >>"$FAKE_RECORD"
exit "${FAKE_EXIT:-0}"
`

// newCDN starts the fixture CDN over a fresh directory: tests write, sign
// and tamper with release files in place (Dir), and override names.
func newCDN(t *testing.T) *fixture.CDN {
	t.Helper()
	c := fixture.NewCDNDir(t.TempDir())
	t.Cleanup(c.Close)
	return c
}

// writeCAFile writes the certificates of srvs as one PEM bundle for
// SSL_CERT_FILE and returns its path.
func writeCAFile(t *testing.T, srvs ...*httptest.Server) string {
	t.Helper()
	var buf bytes.Buffer
	for _, s := range srvs {
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// scriptTools are the programs install.sh and the fake updater use.
var scriptTools = []string{
	"bash", "sh", "env", "curl", "tar", "gzip", "mktemp", "wc", "head", "base64", "sha256sum",
	"uname", "rm", "mkdir", "id", "openssl", "cat", "stat",
}

// toolPath builds a PATH directory holding only scriptTools minus omit,
// plus shims (name → script).
func toolPath(t *testing.T, omit []string, shims map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range scriptTools {
		if slices.Contains(omit, tool) {
			continue
		}
		if _, ok := shims[tool]; ok {
			continue
		}
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("install.sh tests need %s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range shims {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type runResult struct {
	exitCode int
	stderr   string
	record   []string // lines the fake updater wrote; nil when it never ran
	tmpLeft  []string // entries left in TMPDIR
}

type runOpts struct {
	script []byte
	args   []string
	caFile string
	path   string   // PATH; empty means the real one
	env    []string // extra environment
	root   string   // TELEPORT_UPDATE_ROOT; empty means a fresh directory
}

// runScript pipes the script into bash the way `curl … | bash -s -- args` does.
func runScript(t *testing.T, o runOpts) runResult {
	t.Helper()
	work := t.TempDir()
	tmp := filepath.Join(work, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	root := o.root
	if root == "" {
		root = filepath.Join(work, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	record := filepath.Join(work, "record")
	path := o.path
	if path == "" {
		path = os.Getenv("PATH")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, append([]string{"-s", "--"}, o.args...)...)
	cmd.Stdin = bytes.NewReader(o.script)
	cmd.Env = append([]string{
		"PATH=" + path,
		"HOME=" + work,
		"TMPDIR=" + tmp,
		"SSL_CERT_FILE=" + o.caFile,
		"TELEPORT_UPDATE_ROOT=" + root,
		"FAKE_RECORD=" + record,
	}, o.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	err = cmd.Run()
	res := runResult{stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run install.sh: %v", err)
		}
		res.exitCode = ee.ExitCode()
	}
	if data, err := os.ReadFile(record); err == nil {
		res.record = strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		res.tmpLeft = append(res.tmpLeft, e.Name())
	}
	return res
}

// updaterRelease describes how a test CDN's updater release is made.
type updaterRelease struct {
	version string
	arch    string
	// tamper, when set, changes the published files after signing.
	tamper func(t *testing.T, tarball string, s *signer)
}

// publish writes a signed fake-updater release into c.
func publish(t *testing.T, c *fixture.CDN, s *signer, r updaterRelease) {
	t.Helper()
	tarball := filepath.Join(c.Dir(), updaterTarballName(r.version, r.arch))
	writeTarball(t, tarball, map[string][]byte{"bin/teleport-update": []byte(fakeUpdater)})
	s.sign(t, tarball)
	if r.tamper != nil {
		r.tamper(t, tarball, s)
	}
}

func wantArgs(args ...string) []string {
	out := make([]string, 0, len(args)+1)
	for _, a := range args {
		out = append(out, "arg="+a)
	}
	return append(out, "env=TELEPORT_INSTALL_METHOD_NODE_SCRIPT=true")
}

func TestInstallScript(t *testing.T) {
	t.Parallel()
	arch := hostArch(t)
	name := updaterTarballName(testVersion, arch)

	type tc struct {
		name    string
		tamper  func(t *testing.T, tarball string, s *signer)
		serve   func(c *fixture.CDN) map[string]http.HandlerFunc // CDN overrides by file name
		group   string
		baseURL func(c *fixture.CDN) string // default: the CDN's URL
		args    []string
		omit    []string
		shims   map[string]string
		env     []string
		// outcome
		wantCode   int
		wantStderr []string
		wantRecord func(c *fixture.CDN, root string) []string // nil: the updater must not run
		wantNoCDN  bool                                       // the CDN must see no request
		// wantNoTarball: refused before the tarball was downloaded.
		wantNoTarball bool
	}
	unameShim := func(s, m string) map[string]string {
		return map[string]string{"uname": fmt.Sprintf("#!/bin/sh\ncase \"$1\" in -s) echo %s;; -m) echo %s;; *) exit 2;; esac\n", s, m)}
	}
	tests := []tc{
		{
			name:       "verified release runs install",
			group:      "staging",
			args:       []string{"--token", "secret token", "--no-census=false"},
			wantStderr: []string{"SHA-256 of " + name + " matches", "Signature on " + name + ".sha256 verified", "--token-file "},
			wantRecord: func(c *fixture.CDN, root string) []string {
				w := wantArgs("install", "--proxy", "proxy.example.com:3080", "--group", "staging",
					"--root", root, "--base-url", c.URL(), "--token-file", "<token-file>")
				// The token reaches the updater in a file of mode 0600.
				return slices.Concat(w[:len(w)-1], []string{"token-file=secret token mode=600", "arg=--no-census=false"}, w[len(w)-1:])
			},
		},
		{
			name:       "--token=VALUE",
			args:       []string{"--token=secret token"},
			wantStderr: []string{"--token-file "},
			wantRecord: func(c *fixture.CDN, root string) []string {
				w := wantArgs("install", "--proxy", "proxy.example.com:3080",
					"--root", root, "--base-url", c.URL(), "--token-file", "<token-file>")
				return slices.Concat(w[:len(w)-1], []string{"token-file=secret token mode=600"}, w[len(w)-1:])
			},
		},
		{
			name:  "no group and trailing slash on base",
			group: "",
			baseURL: func(c *fixture.CDN) string {
				return c.URL() + "/"
			},
			wantRecord: func(c *fixture.CDN, root string) []string {
				return wantArgs("install", "--proxy", "proxy.example.com:3080", "--root", root, "--base-url", c.URL())
			},
		},
		{
			name: "tampered tarball",
			tamper: func(t *testing.T, tarball string, _ *signer) {
				writeTarball(t, tarball, map[string][]byte{"bin/teleport-update": []byte("#!/bin/sh\necho pwned >>\"$FAKE_RECORD\"\n")})
			},
			wantCode:   1,
			wantStderr: []string{"SHA-256 mismatch for " + name, "Refusing to install"},
		},
		{
			name: "signature by another key",
			tamper: func(t *testing.T, tarball string, _ *signer) {
				newSigner(t).sign(t, tarball)
			},
			wantCode:      1,
			wantStderr:    []string{"signature check FAILED for " + name + ".sha256"},
			wantNoTarball: true,
		},
		{
			name: "checksum file edited after signing",
			tamper: func(t *testing.T, tarball string, _ *signer) {
				line, err := os.ReadFile(tarball + ".sha256")
				if err != nil {
					t.Fatal(err)
				}
				line[0] ^= 1
				if err := os.WriteFile(tarball+".sha256", line, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantCode:      1,
			wantStderr:    []string{"signature check FAILED"},
			wantNoTarball: true,
		},
		{
			name: "signed checksum names another file",
			tamper: func(t *testing.T, tarball string, s *signer) {
				data, err := os.ReadFile(tarball)
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(data)
				s.signChecksum(t, tarball, []byte(hex.EncodeToString(sum[:])+"  teleport-v1.2.3-linux-"+arch+"-bin.tar.gz\n"))
			},
			wantCode:   1,
			wantStderr: []string{"names 'teleport-v1.2.3-linux-" + arch + "-bin.tar.gz', not '" + name + "'"},
		},
		{
			name: "signed checksum with two lines",
			tamper: func(t *testing.T, tarball string, s *signer) {
				line, err := os.ReadFile(tarball + ".sha256")
				if err != nil {
					t.Fatal(err)
				}
				s.signChecksum(t, tarball, append(line, line...))
			},
			wantCode:   1,
			wantStderr: []string{"must hold exactly one line; it holds 2"},
		},
		{
			name: "signature not base64",
			tamper: func(t *testing.T, tarball string, _ *signer) {
				if err := os.WriteFile(tarball+".sha256.sig", []byte("!!!not base64!!!"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantCode:      1,
			wantStderr:    []string{"is not valid base64"},
			wantNoTarball: true,
		},
		{
			name: "signature missing on the CDN",
			tamper: func(t *testing.T, tarball string, _ *signer) {
				if err := os.Remove(tarball + ".sha256.sig"); err != nil {
					t.Fatal(err)
				}
			},
			wantCode:      1,
			wantStderr:    []string{"download of ", name + ".sha256.sig failed"},
			wantNoTarball: true,
		},
		{
			name: "oversized checksum file",
			tamper: func(t *testing.T, tarball string, _ *signer) {
				if err := os.WriteFile(tarball+".sha256", bytes.Repeat([]byte("a"), 5000), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantCode:   1,
			wantStderr: []string{name + ".sha256 failed"},
		},
		{
			name: "endless checksum file without a length",
			serve: func(*fixture.CDN) map[string]http.HandlerFunc {
				return map[string]http.HandlerFunc{name + ".sha256": func(w http.ResponseWriter, r *http.Request) {
					chunk := bytes.Repeat([]byte("0"), 1024)
					for range 64 {
						if _, err := w.Write(chunk); err != nil {
							return
						}
						w.(http.Flusher).Flush()
					}
				}}
			},
			wantCode:   1,
			wantStderr: []string{name + ".sha256 stopped: it is larger than the 4096 bytes allowed"},
		},
		{
			name: "redirect to plain http is refused",
			// The plain-HTTP twin serves the same good files, so only the
			// refusal to follow the redirect makes this fail.
			serve: func(c *fixture.CDN) map[string]http.HandlerFunc {
				plain := httptest.NewServer(http.FileServer(http.Dir(c.Dir())))
				t.Cleanup(plain.Close)
				return map[string]http.HandlerFunc{"/" + name + ".sha256": func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
				}}
			},
			wantCode:      1,
			wantStderr:    []string{"download of ", name + ".sha256 failed"},
			wantNoTarball: true,
		},
		{
			name:       "no openssl is refused",
			omit:       []string{"openssl"},
			wantCode:   1,
			wantStderr: []string{"openssl is not installed", "TELEPORT_UPDATE_INSECURE_SKIP_SIGNATURE=yes"},
			wantNoCDN:  true,
		},
		{
			name:       "no openssl with the insecure override",
			omit:       []string{"openssl"},
			env:        []string{"TELEPORT_UPDATE_INSECURE_SKIP_SIGNATURE=yes"},
			group:      "staging",
			wantStderr: []string{"WARNING: the signature on " + name + " is NOT being checked"},
			wantRecord: func(c *fixture.CDN, root string) []string {
				return wantArgs("install", "--proxy", "proxy.example.com:3080", "--group", "staging", "--root", root, "--base-url", c.URL())
			},
		},
		{
			name: "insecure override still checks the SHA-256",
			omit: []string{"openssl"},
			env:  []string{"TELEPORT_UPDATE_INSECURE_SKIP_SIGNATURE=yes"},
			tamper: func(t *testing.T, tarball string, _ *signer) {
				writeTarball(t, tarball, map[string][]byte{"bin/teleport-update": []byte("#!/bin/sh\necho pwned >>\"$FAKE_RECORD\"\n")})
			},
			wantCode:   1,
			wantStderr: []string{"SHA-256 mismatch"},
		},
		{
			name:       "unsupported architecture",
			shims:      unameShim("Linux", "riscv64"),
			wantCode:   1,
			wantStderr: []string{"unsupported CPU architecture 'riscv64'"},
			wantNoCDN:  true,
		},
		{
			name:       "unsupported operating system",
			shims:      unameShim("Darwin", "arm64"),
			wantCode:   1,
			wantStderr: []string{"unsupported operating system 'Darwin'"},
			wantNoCDN:  true,
		},
		{
			name: "plain http base URL is refused",
			baseURL: func(c *fixture.CDN) string {
				return "http://" + c.Server.Listener.Addr().String()
			},
			wantCode:   1,
			wantStderr: []string{"is not https://"},
			wantNoCDN:  true,
		},
		{
			name: "updater that cannot be executed gets the root-only hint",
			tamper: func(t *testing.T, tarball string, s *signer) {
				writeTarball(t, tarball, map[string][]byte{"bin/teleport-update": []byte("\x7fELF\x00\x00 not a program for this machine")})
				s.sign(t, tarball)
			},
			wantCode:   1,
			wantStderr: []string{"(exit 126)", "mounted noexec", "allows execution and that only root can write to"},
		},
		{
			name:       "updater install failure is reported",
			env:        []string{"FAKE_EXIT=3"},
			wantCode:   1,
			wantStderr: []string{"teleport-update install failed (exit 3)"},
			wantRecord: func(c *fixture.CDN, root string) []string {
				return wantArgs("install", "--proxy", "proxy.example.com:3080", "--root", root, "--base-url", c.URL())
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCDN(t)
			s := newSigner(t)
			publish(t, c, s, updaterRelease{version: testVersion, arch: arch, tamper: tt.tamper})
			if tt.serve != nil {
				for file, h := range tt.serve(c) {
					c.Handle(strings.TrimPrefix(file, "/"), h)
				}
			}
			base := c.URL()
			if tt.baseURL != nil {
				base = tt.baseURL(c)
			}
			script := render(t, scriptData{
				ProxyAddr: "proxy.example.com:3080",
				Group:     tt.group,
				Version:   testVersion,
				BaseURL:   base,
				PublicKey: s.publicPEM,
			})
			path := ""
			if tt.omit != nil || tt.shims != nil {
				path = toolPath(t, tt.omit, tt.shims)
			}
			res := runScript(t, runOpts{script: script, args: tt.args, caFile: writeCAFile(t, c.Server), path: path, env: tt.env})
			if res.exitCode != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", res.exitCode, tt.wantCode, res.stderr)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q; stderr:\n%s", want, res.stderr)
				}
			}
			if tt.wantRecord == nil {
				if res.record != nil {
					t.Errorf("the updater ran but must not have: %q", res.record)
				}
			} else {
				// runScript's root is <work>/root; recover it from the record.
				root := rootFromRecord(res.record)
				if want := tt.wantRecord(c, root); !slices.Equal(res.record, want) {
					t.Errorf("updater invocation:\n got %q\nwant %q", res.record, want)
				}
			}
			if n := c.Served(name); tt.wantNoTarball && n != 0 {
				t.Errorf("the tarball was downloaded %d times although the signature check failed", n)
			}
			if tt.wantNoCDN && c.Requests() != 0 {
				t.Errorf("the CDN saw %d requests, want none", c.Requests())
			}
			if len(res.tmpLeft) != 0 {
				t.Errorf("install.sh left %q in TMPDIR", res.tmpLeft)
			}
			if strings.Contains(res.stderr, "secret token") {
				t.Errorf("install.sh printed the enrollment token:\n%s", res.stderr)
			}
		})
	}
}

// rootFromRecord returns the value after --root in a fake-updater record.
func rootFromRecord(record []string) string {
	for i, l := range record {
		if l == "arg=--root" && i+1 < len(record) {
			return strings.TrimPrefix(record[i+1], "arg=")
		}
	}
	return ""
}

func TestInstallScriptRefusesBadFilledValues(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	good := scriptData{ProxyAddr: "proxy.example.com:3080", Group: "staging", Version: testVersion, BaseURL: "https://cdn.example.com", PublicKey: s.publicPEM}
	tests := []struct {
		name   string
		modify func(d *scriptData)
		want   string
	}{
		{"empty proxy", func(d *scriptData) { d.ProxyAddr = "" }, "the proxy address is empty"},
		{"proxy with spaces", func(d *scriptData) { d.ProxyAddr = "a b" }, "is not a host[:port]"},
		{"group with shell characters", func(d *scriptData) { d.Group = "a;b" }, "the update group 'a;b'"},
		{"version with v", func(d *scriptData) { d.Version = "v1.2.3" }, "is not a semantic version"},
		{"version with path", func(d *scriptData) { d.Version = "1.2.3/../x" }, "is not a semantic version"},
		{"no key", func(d *scriptData) { d.PublicKey = "" }, "is not a PEM public key"},
		{"base with a query", func(d *scriptData) { d.BaseURL = "https://cdn.example.com/?x=1" }, "is not a plain https://host[:port][/path] URL"},
		{"base with user info", func(d *scriptData) { d.BaseURL = "https://user@cdn.example.com" }, "is not a plain https://host[:port][/path] URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := good
			tt.modify(&d)
			res := runScript(t, runOpts{script: render(t, d)})
			if res.exitCode != 1 || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", res.exitCode, res.stderr, tt.want)
			}
		})
	}
}

// TestTruncatedScriptDoesNothing runs every prefix of the script that ends
// before the final `main "$@"` line and checks that none of them downloads
// or runs anything.
func TestTruncatedScriptDoesNothing(t *testing.T) {
	t.Parallel()
	arch := hostArch(t)
	c := newCDN(t)
	s := newSigner(t)
	publish(t, c, s, updaterRelease{version: testVersion, arch: arch})
	script := render(t, scriptData{ProxyAddr: "proxy.example.com:3080", Group: "staging", Version: testVersion, BaseURL: c.URL(), PublicKey: s.publicPEM})
	last := bytes.LastIndex(script, []byte("\nmain \"$@\""))
	if last < 0 {
		t.Fatal("rendered script has no final main call")
	}
	caFile := writeCAFile(t, c.Server)
	// Cut every 61 bytes (coprime with typical line lengths) and right
	// before the final call.
	cuts := []int{last, last + 1}
	for n := 0; n < last; n += 61 {
		cuts = append(cuts, n)
	}
	for _, n := range cuts {
		res := runScript(t, runOpts{script: script[:n], caFile: caFile})
		if res.record != nil {
			t.Errorf("script cut at %d/%d ran the updater", n, len(script))
		}
		if len(res.tmpLeft) != 0 {
			t.Errorf("script cut at %d/%d left %q in TMPDIR", n, len(script), res.tmpLeft)
		}
	}
	if got := c.Requests(); got != 0 {
		t.Errorf("truncated scripts made %d CDN requests, want none", got)
	}
	// The whole script does run: the cut test is not vacuous.
	res := runScript(t, runOpts{script: script, caFile: caFile})
	if res.exitCode != 0 || res.record == nil {
		t.Fatalf("the complete script did not run the updater: exit %d\n%s", res.exitCode, res.stderr)
	}
}

func TestInstallScriptIsIdempotent(t *testing.T) {
	t.Parallel()
	arch := hostArch(t)
	c := newCDN(t)
	s := newSigner(t)
	publish(t, c, s, updaterRelease{version: testVersion, arch: arch})
	script := render(t, scriptData{ProxyAddr: "proxy.example.com:3080", Group: "staging", Version: testVersion, BaseURL: c.URL(), PublicKey: s.publicPEM})
	caFile := writeCAFile(t, c.Server)
	var first []string
	for i := range 3 {
		res := runScript(t, runOpts{script: script, caFile: caFile})
		if res.exitCode != 0 {
			t.Fatalf("run %d: exit %d\n%s", i+1, res.exitCode, res.stderr)
		}
		if len(res.tmpLeft) != 0 {
			t.Errorf("run %d left %q in TMPDIR", i+1, res.tmpLeft)
		}
		// Each run has its own root; compare with the root scrubbed.
		got := slices.Clone(res.record)
		for j, l := range got {
			if l == "arg="+rootFromRecord(res.record) {
				got[j] = "arg=ROOT"
			}
		}
		if first == nil {
			first = got
		} else if !slices.Equal(got, first) {
			t.Errorf("run %d invoked %q, run 1 invoked %q", i+1, got, first)
		}
	}
}
