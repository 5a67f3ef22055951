package main

import (
	"bytes"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

// publishBuild builds, signs and serves the edition/FIPS build of an agent
// release under Teleport's name for it.
func (e *e2e) publishBuild(version, edition string, fips bool) string {
	e.t.Helper()
	data, err := releasetest.ScriptRelease(version, false)
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := download.NewArtifact(download.ProductTeleport, version, runtime.GOOS, runtime.GOARCH)
	if err != nil {
		e.t.Fatal(err)
	}
	a.Edition, a.FIPS = edition, fips
	if err := e.cdn.Publish(e.key, e.dir, a.TarballName(), data); err != nil {
		e.t.Fatal(err)
	}
	return a.TarballName()
}

// setBuild has the proxy serve version, updating at once, as the build
// edition/fips set in its resource, and waits until it does.
func (e *e2e) setBuild(version, edition string, fips bool) {
	e.t.Helper()
	pol := fixture.Policy{Version: version, Schedule: "immediate", Group: "staging", Window: "0 2 * * *", Duration: time.Minute, Edition: edition, FIPS: fips}
	tmp := e.policy + ".tmp"
	os.WriteFile(tmp, pol.YAML(), 0o644)
	if err := os.Rename(tmp, e.policy); err != nil {
		e.t.Fatal(err)
	}
	want := `"edition":"` + edition + `","fips":` + map[bool]string{true: "true", false: "false"}[fips]
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(e.caFile)
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}, Timeout: 5 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get("https://" + e.proxy + "/v1/webapi/find?group=staging")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(body, []byte(`"agent_version":"`+version+`"`)) && bytes.Contains(body, []byte(want)) {
			return
		}
	}
	e.t.Fatalf("the proxy never served %s as %s", version, want)
}

// TestE2EFlavour, through the real binary and a real proxy: a FIPS host
// fetches the Enterprise FIPS tarball and records its build; when the
// proxy's resource changes the build, update refuses with a clear one-line
// reason and exit 1, changing nothing, until an admin re-runs install, which
// switches.
func TestE2EFlavour(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	fipsTarball := e.publishBuild("1.0.0", "ent", true)
	e.publishBuild("2.0.0", "ent", true)
	e.publishBuild("2.0.0", "community", false)
	e.setBuild("1.0.0", "ent", true)

	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	if n := e.cdn.Hits(fipsTarball); n != 1 {
		t.Errorf("%s fetched %d times; want once", fipsTarball, n)
	}
	st := e.status()
	if st.Active != "1.0.0" || st.Edition != "ent" || !st.FIPS || st.TargetEdition != "ent" || !st.TargetFIPS {
		t.Fatalf("status after a FIPS install: %+v", st)
	}
	state := filepath.Join(e.root, "var/lib/teleport-update/update.yaml")
	yaml, _ := os.ReadFile(state)
	if !strings.Contains(string(yaml), "  active:\n    version: 1.0.0\n    flags: [Enterprise, FIPS]\n") {
		t.Errorf("update.yaml does not record the build as Teleport does:\n%s", yaml)
	}
	if out := e.mustRun("status", "--offline").stdout; !strings.Contains(out, "Build:") || !strings.Contains(out, "Enterprise FIPS") {
		t.Errorf("status does not show the build:\n%s", out)
	}

	// The proxy switches to community builds: update refuses, exit 1.
	e.setBuild("2.0.0", "community", false)
	before, _ := os.ReadFile(state)
	hits := e.cdn.TotalHits()
	r := e.run(nil, "update", "--now")
	if r.code != 1 || !strings.Contains(r.stderr, "the proxy serves community builds but this host runs 1.0.0 (Enterprise FIPS)") ||
		!strings.Contains(r.stderr, "until an admin runs `teleport-update install`") {
		t.Fatalf("update to another build: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(state); !bytes.Equal(before, after) || e.cdn.TotalHits() != hits || e.linked() != "1.0.0" {
		t.Fatalf("a refused update changed something (CDN hits %d -> %d, linked %s):\n%s", hits, e.cdn.TotalHits(), e.linked(), after)
	}
	if out := e.mustRun("status").stdout; !strings.Contains(out, "Proxy build:") || !strings.Contains(out, "community (differs") {
		t.Errorf("status does not show the proxy's other build:\n%s", out)
	}

	// An admin's install switches, explicitly.
	e.mustRun("install")
	st = e.status()
	if st.Active != "2.0.0" || st.Edition != "community" || st.FIPS || st.Backup != "1.0.0" || e.linked() != "2.0.0" {
		t.Fatalf("status after the switch: %+v (linked %s)", st, e.linked())
	}
}

// TestE2EOldStateFile: an update.yaml written before builds were recorded
// (active and backup as plain versions) still works: status reads it as
// community, and the next update writes the new form.
func TestE2EOldStateFile(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.publish("1.0.0", false)
	e.publish("2.0.0", false)
	e.mustRun("install", "--proxy", e.proxy, "--base-url", e.cdn.Server.URL)
	state := filepath.Join(e.root, "var/lib/teleport-update/update.yaml")
	data, _ := os.ReadFile(state)
	oldForm := strings.Replace(string(data), "  active:\n    version: 1.0.0\n", "  active: 1.0.0\n", 1)
	if oldForm == string(data) {
		t.Fatalf("update.yaml has no active revision to rewrite:\n%s", data)
	}
	if err := os.WriteFile(state, []byte(oldForm), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := e.status(); st.Active != "1.0.0" || st.Edition != "community" || st.FIPS {
		t.Fatalf("status of an old update.yaml: %+v", st)
	}
	e.setPolicy("2.0.0", "immediate")
	e.mustRun("update", "--now")
	data, _ = os.ReadFile(state)
	if !strings.Contains(string(data), "  active:\n    version: 2.0.0\n  backup:\n    version: 1.0.0\n") {
		t.Errorf("update did not write the new form:\n%s", data)
	}
}

// TestE2EProxyServeFlavourFlags: `proxy serve --edition/--fips` set the build
// the find answer names when the resource sets none (--fips alone is an
// Enterprise FIPS build), and an unknown edition stops the proxy at start.
func TestE2EProxyServeFlavourFlags(t *testing.T) {
	t.Parallel()
	bin := testBinary(t)
	dir := t.TempDir()
	tlsFiles, err := fixture.NewTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policy, fixture.Policy{Version: "1.0.0", Schedule: "immediate", Group: "staging", Window: "0 2 * * *", Duration: time.Minute}.YAML(), 0o644)
	serve := func(extra ...string) (*fixture.Proxy, error) {
		return fixture.StartProxy(bin, append([]string{"--resource", policy, "--listen", "127.0.0.1:0", "--tls-cert", tlsFiles.CertFile, "--tls-key", tlsFiles.KeyFile}, extra...)...)
	}
	p, err := serve("--fips")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(tlsFiles.CAPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}, Timeout: 5 * time.Second}
	resp, err := client.Get("https://" + p.Addr + "/v1/webapi/find")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`"edition":"ent","fips":true`)) {
		t.Errorf("proxy serve --fips answers %s; want edition ent, fips true", body)
	}
	if p, err := serve("--edition", "enterprise"); err == nil || !strings.Contains(err.Error(), "invalid edition") {
		if p != nil {
			p.Stop()
		}
		t.Errorf("proxy serve --edition enterprise: %v; want it to refuse to start", err)
	}
}
