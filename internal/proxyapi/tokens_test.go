package proxyapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gravitational/teleport-update/api"
)

// tokensYAML renders a tokens file of group staging tokens.
func tokensYAML(tokens ...string) string {
	var b strings.Builder
	b.WriteString("tokens:\n")
	for _, t := range tokens {
		fmt.Fprintf(&b, "  - token: %s\n    group: staging\n", t)
	}
	return b.String()
}

// TestTokenCIDR4in6 checks a token CIDR written as an IPv4-mapped IPv6
// prefix matches IPv4 clients (the test client is 127.0.0.1).
func TestTokenCIDR4in6(t *testing.T) {
	t.Parallel()
	inside := strings.Repeat("i", MinTokenLen)
	outside := strings.Repeat("o", MinTokenLen)
	e := newEnv(t, func(c *Config) {
		c.Census = &fakeCensus{}
		c.Tokens = []Token{
			{Token: inside, Group: "staging", CIDRs: []string{"::ffff:127.0.0.0/104"}},
			{Token: outside, Group: "staging", CIDRs: []string{"::ffff:10.0.0.0/104"}},
		}
	})
	if code, _, body := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bearer(inside)); code != http.StatusAccepted {
		t.Errorf("token for ::ffff:127.0.0.0/104 from 127.0.0.1 = %d %s; want 202", code, body)
	}
	if code, _, _ := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bearer(outside)); code != http.StatusForbidden {
		t.Errorf("token for ::ffff:10.0.0.0/104 from 127.0.0.1 = %d; want 403", code)
	}
	for in, want := range map[string]string{
		"::ffff:127.0.0.0/104": "127.0.0.0/8",
		"::ffff:10.1.2.3/128":  "10.1.2.3/32",
		"::ffff:0.0.0.0/96":    "0.0.0.0/0",
		"2001:db8::/32":        "2001:db8::/32",
		"::/0":                 "::/0",
	} {
		if p, err := parseCIDR(in); err != nil || p != netip.MustParsePrefix(want) {
			t.Errorf("parseCIDR(%s) = %v, %v; want %s", in, p, err, want)
		}
	}
}

// TestTokensFileSafety checks the tokens file must be private to its
// owner, as it holds secrets, and that the check is made on the file a
// symlink leads to.
func TestTokensFileSafety(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	content := tokensYAML(stagingToken)
	write := func(name string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // beyond the umask
			t.Fatal(err)
		}
		return path
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if _, err := LoadTokens(write(fmt.Sprintf("ok-%o", mode), mode)); err != nil {
			t.Errorf("mode %#o: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o620, 0o602, 0o660, 0o666} {
		path := write(fmt.Sprintf("bad-%o", mode), mode)
		_, err := LoadTokens(path)
		if !errors.Is(err, ErrUnsafeTokensFile) || !strings.Contains(err.Error(), fmt.Sprintf("%#o", mode)) {
			t.Errorf("mode %#o: LoadTokens = %v; want ErrUnsafeTokensFile naming the mode", mode, err)
		}
		if _, err := New(Config{PolicyFile: writePolicy(t), TokensFile: path}); !errors.Is(err, ErrUnsafeTokensFile) {
			t.Errorf("mode %#o: New = %v; want ErrUnsafeTokensFile", mode, err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(write("target", 0o600), link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokens(link); err != nil {
		t.Errorf("symlink to a private file: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokens(fifo); !errors.Is(err, ErrUnsafeTokensFile) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO: LoadTokens = %v; want a refusal, without blocking", err)
	}
	if os.Geteuid() == 0 {
		other := write("other-owner", 0o600)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadTokens(other); !errors.Is(err, ErrUnsafeTokensFile) || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("file of another user: LoadTokens = %v; want ErrUnsafeTokensFile", err)
		}
	}
}

// writePolicy writes the valid test policy to a new file.
func writePolicy(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFileAtomic(t, path, validPolicy)
	return path
}

// tokensEnv starts a server with a tokens file holding tokens.
func tokensEnv(t *testing.T, tokens ...string) (*testEnv, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	writeFileAtomic(t, path, tokensYAML(tokens...))
	e := newEnv(t, func(c *Config) { c.TokensFile = path; c.Census = &fakeCensus{} })
	return e, path
}

// report posts a census report with tok and returns the status code.
func (e *testEnv) report(t *testing.T, tok string) int {
	t.Helper()
	code, _, _ := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), bearer(tok))
	return code
}

// TestReloadTokens revokes a token the way SIGHUP does: at once, without a
// restart. A broken or unsafe file is refused and the tokens in effect stay.
func TestReloadTokens(t *testing.T) {
	t.Parallel()
	leaked, kept := strings.Repeat("l", MinTokenLen), strings.Repeat("k", MinTokenLen)
	e, path := tokensEnv(t, leaked, kept)
	if code := e.report(t, leaked); code != http.StatusAccepted {
		t.Fatalf("report with the leaked token before revocation = %d; want 202", code)
	}
	writeFileAtomic(t, path, tokensYAML(kept))
	if err := e.s.ReloadTokens(); err != nil {
		t.Fatal(err)
	}
	if code := e.report(t, leaked); code != http.StatusUnauthorized {
		t.Errorf("revoked token = %d; want 401", code)
	}
	if !strings.Contains(e.logs.String(), `msg="Enrollment tokens reloaded." path=`+path+` tokens=1 added=0 removed=1`) {
		t.Errorf("reload not logged:\n%s", e.logs.String())
	}
	if err := e.s.ReloadTokens(); err != nil {
		t.Errorf("ReloadTokens of an unchanged file = %v", err)
	}

	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    error
	}{
		{"invalid", "tokens:\n  - token: short\n    group: staging\n", 0o600, ErrInvalidTokens},
		{"world-readable", tokensYAML(leaked, kept), 0o644, ErrUnsafeTokensFile},
		{"missing", "", 0, os.ErrNotExist},
	} {
		if tc.mode == 0 {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		} else {
			writeFileAtomic(t, path, tc.content)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.s.ReloadTokens(); !errors.Is(err, tc.want) {
			t.Errorf("%s file: ReloadTokens = %v; want %v", tc.name, err, tc.want)
		}
		if code := e.report(t, kept); code != http.StatusAccepted {
			t.Errorf("after a refused %s file the token in effect = %d; want 202", tc.name, code)
		}
		if code := e.report(t, leaked); code != http.StatusUnauthorized {
			t.Errorf("after a refused %s file the revoked token = %d; want 401", tc.name, code)
		}
	}
	if n := strings.Count(e.logs.String(), "Enrollment tokens file refused; the tokens in effect stay."); n != 3 {
		t.Errorf("%d refusals logged; want 3:\n%s", n, e.logs.String())
	}
}

// TestPollTokensStable checks the watcher puts a change in effect only
// once two polls in a row have seen it: a valid beginning of a file being
// written (one token of two) never revokes the other.
func TestPollTokensStable(t *testing.T) {
	t.Parallel()
	first, second, third := strings.Repeat("1", MinTokenLen), strings.Repeat("2", MinTokenLen), strings.Repeat("3", MinTokenLen)
	e, path := tokensEnv(t, first, second)
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil { // in place, as a careless editor does
			t.Fatal(err)
		}
	}
	full := tokensYAML(first, second, third)
	write(full[:len(tokensYAML(first))]) // caught half written: only the first token
	e.s.pollTokens()
	write(full)
	e.s.pollTokens()
	if code := e.report(t, third); code != http.StatusUnauthorized {
		t.Fatalf("a token seen by one poll only = %d; want 401 (not yet in effect)", code)
	}
	if code := e.report(t, second); code != http.StatusAccepted {
		t.Fatalf("the token the half-written file lacked = %d; want 202 (never revoked)", code)
	}
	e.s.pollTokens()
	for _, tok := range []string{first, second, third} {
		if code := e.report(t, tok); code != http.StatusAccepted {
			t.Errorf("after two polls a token of the new file = %d; want 202", code)
		}
	}
}
