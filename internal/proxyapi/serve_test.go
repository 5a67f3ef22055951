package proxyapi

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/fixture"
)

func TestWriteAddrFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		before  string // existing content, when not empty
		addr    string
		wantErr bool
	}{
		{"new file", filepath.Join(dir, "a"), "", "127.0.0.1:3080", false},
		{"replaces a stale file", filepath.Join(dir, "b"), "127.0.0.1:1\n", "[::1]:45678", false},
		{"missing directory", filepath.Join(dir, "missing", "c"), "", "127.0.0.1:3080", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != "" {
				if err := os.WriteFile(tt.path, []byte(tt.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := writeAddrFile(tt.path, tt.addr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("writeAddrFile = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			got, err := os.ReadFile(tt.path)
			if err != nil || string(got) != tt.addr+"\n" {
				t.Errorf("address file holds %q (%v), want %q", got, err, tt.addr+"\n")
			}
		})
	}
	// No temporary file is left behind, whatever happened.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestServe runs Serve as a library: it announces its address in the
// address file, serves find and census over TLS from the database it
// opened, and returns nil once its context is done, with the database
// closed and its reports on disk.
func TestServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := fixture.NewCA("serve test CA")
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := ca.IssueFiles("proxy.test", certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, fixture.Policy{Version: "16.4.6", Schedule: "immediate", Group: "staging",
		Window: "0 2 * * *", Duration: time.Hour}.YAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	db, addrFile := filepath.Join(dir, "census.db"), filepath.Join(dir, "addr")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, ServeConfig{
			API:         Config{PolicyFile: policy, Tokens: []Token{{Token: stagingToken, Group: "staging"}}},
			Listen:      "127.0.0.1:0",
			AddrFile:    addrFile,
			TLSCertFile: certPath,
			TLSKeyFile:  keyPath,
			CensusDB:    db,
		})
	}()
	addr := waitAddrFile(t, addrFile, served)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + api.FindPath + "?group=staging")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"agent_version":"16.4.6"`) {
		t.Errorf("find = %s %s; want 16.4.6", resp.Status, body)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+api.CensusPath, strings.NewReader(validReport))
	req.Header.Set("Authorization", "Bearer "+stagingToken)
	signReport(t, req, []byte(validReport), testHostKey, time.Now())
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("census = %s; want 202", resp.Status)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after cancel = %v; want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	st, err := store.OpenReadOnly(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sum, err := st.Summary(context.Background(), time.Now(), time.Hour)
	if err != nil || sum.TotalHosts != 1 {
		t.Errorf("stored hosts = %+v, %v; want 1", sum, err)
	}
}

// waitAddrFile waits for Serve to write its address file, failing when
// Serve returns first.
func waitAddrFile(t *testing.T, path string, served <-chan error) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b))
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case err := <-served:
			t.Fatalf("Serve returned %v before listening", err)
		case <-deadline:
			t.Fatal("Serve did not write its address file within 30s")
		case <-time.After(5 * time.Millisecond):
		}
	}
}
