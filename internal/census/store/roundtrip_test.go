package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/census"
	"github.com/gravitational/teleport-update/internal/census/store"
	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/proxyapi"
)

const (
	stagingToken = "roundtrip-staging-token-0123456789abcdef"
	adminToken   = "roundtrip-admin-token-0123456789abcdef01"
)

// TestAgentToProxyRoundTrip: the agent collects its report from a fixture
// tree, sends it over TLS to the real proxy handler, which stores it in
// SQLite; the summary, over HTTP and from the store, shows the host in the
// token's group. A report the proxy refuses is not stored.
func TestAgentToProxyRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "census.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	policyFile := filepath.Join(dir, "autoupdate_version.yaml")
	policy := fixture.Policy{Version: "16.4.6", Schedule: "regular", JitterSeconds: 60, Group: "staging",
		Window: "0 2 * * *", Duration: time.Hour}.YAML()
	if err := os.WriteFile(policyFile, policy, 0o644); err != nil {
		t.Fatal(err)
	}
	server, err := proxyapi.New(proxyapi.Config{
		PolicyFile: policyFile,
		Tokens: []proxyapi.Token{
			{Token: stagingToken, Group: "staging"},
			{Token: adminToken, Admin: true},
		},
		Census: st,
	})
	if err != nil {
		t.Fatalf("proxyapi.New: %v", err)
	}
	srv := httptest.NewTLSServer(server.Handler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")

	salt, err := census.NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	state := census.UpdaterState{
		Group:          "production", // the token says staging: the token wins
		ActiveVersion:  "16.4.6",
		InstallMethods: census.InstallMethodsFromEnv([]string{"TELEPORT_INSTALL_METHOD_NODE_SCRIPT=true"}),
		LastUpdate:     &api.UpdateResult{Time: time.Now().Add(-time.Hour), Target: "16.4.6", Success: true},
		Salt:           salt,
	}
	r := census.Collect(ctx, filepath.Join("..", "testdata", "ubuntu"), state, census.Options{})
	key, err := census.LoadOrCreateHostKey(filepath.Join(dir, "host.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := census.Send(ctx, srv.Client(), addr, stagingToken, key, r); err != nil {
		t.Fatalf("Send: %v", err)
	}

	// A report the proxy must refuse: nothing stored, and Send says refused.
	bad := r
	bad.HostID = strings.Repeat("e", 64)
	bad.CloudEnvironment = "mainframe"
	if err := census.Send(ctx, srv.Client(), addr, stagingToken, key, bad); !errors.Is(err, census.ErrRefused) {
		t.Errorf("Send of an invalid report = %v, want ErrRefused", err)
	}
	// A wrong token is refused too.
	if err := census.Send(ctx, srv.Client(), addr, strings.Repeat("x", 40), key, r); !errors.Is(err, census.ErrRefused) {
		t.Errorf("Send with an unknown token = %v, want ErrRefused", err)
	}
	// Another host's key cannot report for this host id.
	otherKey, err := census.LoadOrCreateHostKey(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := census.Send(ctx, srv.Client(), addr, stagingToken, otherKey, r); !errors.Is(err, census.ErrRefused) || !strings.Contains(err.Error(), "409") {
		t.Errorf("Send signed by another key = %v, want ErrRefused with 409", err)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+api.CensusSummaryPath, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum api.Summary
	if err := json.NewDecoder(resp.Body).Decode(&sum); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET summary: %s, %v", resp.Status, err)
	}
	if sum.TotalHosts != 1 || sum.ByGroup["staging"] != 1 || sum.ByVersion["16.4.6"] != 1 ||
		sum.ByOS["Ubuntu 22.04"] != 1 || sum.ByInstallMethod["node_script"] != 1 || sum.ByLastUpdateResult["success"] != 1 {
		t.Errorf("summary over HTTP = %+v", sum)
	}

	var out strings.Builder
	if err := st.Export(ctx, &out, store.FormatJSON); err != nil {
		t.Fatal(err)
	}
	var h store.ExportedHost
	if err := json.Unmarshal([]byte(out.String()), &h); err != nil {
		t.Fatalf("export: %v\n%s", err, out.String())
	}
	if h.HostID != r.HostID || h.UpdateGroup != "staging" || h.GlibcVersion != "2.35" {
		t.Errorf("stored host = %+v, want host %s in staging with glibc 2.35", h, r.HostID)
	}
}
