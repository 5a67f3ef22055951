package teleportconfig

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		text      string
		wantProxy string
		wantAuth  []string
		wantErr   string
	}{
		{
			name:      "v3 proxy_server",
			text:      "version: v3\nteleport:\n  nodename: n1\n  proxy_server: teleport.example.com:443\n  join_params:\n    token_name: abc\n    method: token\nssh_service:\n  enabled: yes\n",
			wantProxy: "teleport.example.com:443",
		},
		{
			name:      "v3 auth_server is not a proxy",
			text:      "version: v3\nteleport:\n  auth_server: auth.example.com:3025\n",
			wantProxy: "",
		},
		{
			name:      "v3 ignores auth_servers",
			text:      "version: v3\nteleport:\n  auth_servers: [auth.example.com:3025]\n",
			wantProxy: "",
			wantAuth:  []string{"auth.example.com:3025"},
		},
		{
			name:      "v2 auth_servers first entry",
			text:      "version: v2\nteleport:\n  auth_servers:\n    - proxy.example.com:3080\n    - other.example.com:3025\n",
			wantProxy: "proxy.example.com:3080",
			wantAuth:  []string{"proxy.example.com:3080", "other.example.com:3025"},
		},
		{
			name:      "v1 without version key",
			text:      "teleport:\n  auth_servers: [\" proxy.example.com \"]\n",
			wantProxy: "proxy.example.com",
			wantAuth:  []string{"proxy.example.com"},
		},
		{
			name:      "proxy_server wins over auth_servers",
			text:      "version: v2\nteleport:\n  proxy_server: p.example.com:443\n  auth_servers: [a.example.com:3025]\n",
			wantProxy: "p.example.com:443",
			wantAuth:  []string{"a.example.com:3025"},
		},
		{name: "empty file", text: ""},
		{name: "no teleport section", text: "ssh_service:\n  enabled: yes\n"},
		{name: "not yaml", text: "teleport: [\n", wantErr: "invalid Teleport configuration: yaml:"},
		{name: "not a mapping", text: "- a\n- b\n", wantErr: "invalid Teleport configuration"},
		{name: "auth_servers not a list", text: "teleport:\n  auth_servers: a.example.com\n", wantErr: "invalid Teleport configuration"},
		{name: "two documents", text: "version: v3\n---\nversion: v2\n", wantErr: "more than one YAML document"},
		{name: "unknown version", text: "version: v9\n", wantErr: `version "v9" is not v1, v2 or v3`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse([]byte(tc.text))
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse error = %v, want ErrInvalid containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ProxyAddr(); got != tc.wantProxy {
				t.Errorf("ProxyAddr() = %q, want %q", got, tc.wantProxy)
			}
			if !slices.Equal(c.AuthServers, tc.wantAuth) {
				t.Errorf("AuthServers = %q, want %q", c.AuthServers, tc.wantAuth)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	t.Parallel()
	data := []byte("# " + strings.Repeat("x", MaxSize) + "\n")
	if _, err := Parse(data); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Parse of %d bytes = %v, want ErrInvalid: larger than", len(data), err)
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if Exists(root) {
		t.Fatal("Exists on an empty root = true")
	}
	if _, err := Read(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read without a file = %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(root, Rel)
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte("version: v3\nteleport:\n  proxy_server: p.example.com:443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !Exists(root) {
		t.Fatal("Exists with a file = false")
	}
	c, err := Read(root)
	if err != nil || c.ProxyAddr() != "p.example.com:443" {
		t.Fatalf("Read = %+v, %v", c, err)
	}
	big := append([]byte("# "), make([]byte, MaxSize)...)
	os.WriteFile(path, big, 0o600)
	if _, err := Read(root); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Read of an oversized file = %v, want ErrInvalid naming %s", err, path)
	}
}
