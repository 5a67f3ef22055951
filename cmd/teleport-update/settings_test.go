package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// proxyFromConfig: a proxy given wins (with a warning when teleport.yaml
// names another), an installed host keeps its own, and otherwise the file's
// proxy is used; a broken file matters only when the proxy must come from
// it.
func TestProxyFromConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		file     string // "" for no teleport.yaml
		given    string
		hasProxy bool
		want     string
		wantErr  string
		wantWarn bool
	}{
		{name: "given, no file", given: "p:443", want: "p:443"},
		{name: "given, same as file without port", file: "version: v3\nteleport:\n  proxy_server: P\n", given: "p:443", want: "p:443"},
		{name: "given, file differs", file: "version: v3\nteleport:\n  proxy_server: q:443\n", given: "p:443", want: "p:443", wantWarn: true},
		{name: "given, file broken", file: "teleport: [\n", given: "p:443", want: "p:443"},
		{name: "installed host keeps its proxy", file: "version: v3\nteleport:\n  proxy_server: q:443\n", hasProxy: true, want: ""},
		{name: "from v3 file", file: "version: v3\nteleport:\n  proxy_server: q:443\n", want: "q:443"},
		{name: "from v2 file", file: "version: v2\nteleport:\n  auth_servers: [a:3080, b:3025]\n", want: "a:3080"},
		{name: "no file", want: ""},
		{name: "file names none", file: "version: v3\n", want: ""},
		{name: "file broken and needed", file: "teleport: [\n", wantErr: "reading the proxy from the agent's configuration failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			if tc.file != "" {
				os.MkdirAll(filepath.Join(root, "etc"), 0o755)
				os.WriteFile(filepath.Join(root, "etc/teleport.yaml"), []byte(tc.file), 0o600)
			}
			var logs bytes.Buffer
			c := &cli{root: root}
			got, err := c.proxyFromConfig(tc.given, tc.hasProxy, slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("proxyFromConfig = %q, %v; want %q", got, err, tc.want)
			}
			if warned := strings.Contains(logs.String(), "level=WARN"); warned != tc.wantWarn {
				t.Fatalf("warned = %v, want %v:\n%s", warned, tc.wantWarn, logs.String())
			}
		})
	}
}
