package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/census"
	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/proxyapi"
)

// lockedBuffer collects a command's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// writeTestCert writes a certificate for 127.0.0.1 and returns the cert
// and key paths and a pool trusting it.
func writeTestCert(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	ca, err := fixture.NewCA("proxy test CA")
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := ca.IssueFiles("proxy.test", certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath, ca.Pool()
}

var proxyListenRE = regexp.MustCompile(`msg="Proxy listening." addr=(\S+)`)

// startProxy runs `proxy serve` with extra args until the test ends and
// returns its base URL, a client trusting its certificate, its stderr, and
// a stop function that cancels it and returns the exit code.
func startProxy(t *testing.T, extra ...string) (string, *http.Client, *lockedBuffer, func() int) {
	t.Helper()
	dir := t.TempDir()
	certPath, keyPath, pool := writeTestCert(t, dir)
	policy, err := os.ReadFile(filepath.Join("..", "..", "resources", "autoupdate_version.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, policy, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"proxy", "serve", "--resource", policyPath, "--listen", "127.0.0.1:0",
		"--tls-cert", certPath, "--tls-key", keyPath}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, args, &stdout, &stderr) }()
	stop := sync.OnceValue(func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(30 * time.Second):
			t.Errorf("proxy serve did not exit after cancel; stderr:\n%s", stderr.String())
			return -1
		}
	})
	t.Cleanup(func() { stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := proxyListenRE.FindStringSubmatch(stderr.String()); m != nil {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			t.Cleanup(client.CloseIdleConnections)
			return "https://" + m[1], client, &stderr, stop
		}
		select {
		case code := <-done:
			done <- code // for stop
			t.Fatalf("proxy serve exited with %d before listening; stderr:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy serve did not log its address; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProxyServe(t *testing.T) {
	t.Parallel()
	url, client, stderr, stop := startProxy(t)
	resp, err := client.Get(url + proxyapi.FindPath + "?group=staging")
	if err != nil {
		t.Fatal(err)
	}
	var fr proxyapi.FindResponse
	err = json.NewDecoder(resp.Body).Decode(&fr)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || fr.AutoUpdate.AgentVersion != "16.4.6" || fr.AutoUpdate.AgentUpdateGroup != "staging" {
		t.Fatalf("find = %d %+v (%v)", resp.StatusCode, fr, err)
	}
	// install.sh is served from the embedded script with the embedded key.
	resp, err = client.Get(url + proxyapi.InstallScriptPath + "?group=production")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(script), "readonly GROUP='production'") || !strings.Contains(string(script), "BEGIN PUBLIC KEY") {
		t.Errorf("install.sh = %d:\n%.400s", resp.StatusCode, script)
	}
	// TLS 1.1 is refused.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: client.Transport.(*http.Transport).TLSClientConfig.RootCAs, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(url + proxyapi.HealthPath); err == nil {
		resp.Body.Close()
		t.Error("a TLS 1.1 client was served; want TLS 1.2 minimum")
	}
	if code := stop(); code != exitOK {
		t.Fatalf("proxy serve exited %d after cancel; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `msg="Proxy stopped."`) {
		t.Errorf("no clean stop logged:\n%s", stderr.String())
	}
}

func TestProxyServeCensus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	token := strings.Repeat("t", 40)
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - token: "+token+"\n    group: staging\n    cidrs: [127.0.0.1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, client, stderr, stop := startProxy(t, "--tokens", tokens, "--census-db", filepath.Join(dir, "census.db"))
	req, err := http.NewRequest(http.MethodPost, url+proxyapi.CensusPath, strings.NewReader(`{"no_such_field":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The store refuses the report as invalid: census is wired, the token
	// accepted.
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("census with an invalid report = %d %s; want 400 from the store", resp.StatusCode, body)
	}
	// A valid one is stored, and the store's counters are in /metrics.
	report, _ := json.Marshal(census.Report{HostID: strings.Repeat("a", 64), Version: "16.4.6", OS: "linux",
		HostArchitecture: "amd64", UpdaterStatus: census.StatusEnabled, ReportedAt: time.Now()})
	req, _ = http.NewRequest(http.MethodPost, url+proxyapi.CensusPath, bytes.NewReader(report))
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("census with a valid report = %d %s; want 202", resp.StatusCode, body)
	}
	if resp, err = client.Get(url + proxyapi.MetricsPath); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"teleport_update_census_reports_stored_total 1\n", "teleport_update_census_transactions_total 1\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
}

func TestProxyServeUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		sub  string
	}{
		{"no flags", []string{"proxy", "serve"}, exitUsage, "--resource"},
		{"missing resource file", []string{"proxy", "serve", "--resource", filepath.Join(dir, "nope.yaml"), "--tls-cert", "c", "--tls-key", "k"}, exitFailure, "nope.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr lockedBuffer
			code := Run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.sub) {
				t.Errorf("Run(%v) = %d, stderr %q; want %d mentioning %q", tt.args, code, stderr.String(), tt.code, tt.sub)
			}
		})
	}
}

// TestProxyServeGracefulShutdown stops the proxy while a census upload is
// in its handler and checks that the request is answered before the proxy
// exits. The client sends "Expect: 100-continue", so the server's 100
// Continue proves the handler is running before the stop.
func TestProxyServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	token := strings.Repeat("g", 40)
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - token: "+token+"\n    group: staging\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, client, stderr, stop := startProxy(t, "--tokens", tokens, "--census-db", filepath.Join(dir, "census.db"))
	tr := client.Transport.(*http.Transport).Clone()
	tr.ExpectContinueTimeout = time.Minute
	client = &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()

	continued := make(chan struct{})
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got100Continue: func() { close(continued) },
	})
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+proxyapi.CensusPath, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Expect", "100-continue")
	type result struct {
		code int
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got <- result{code: resp.StatusCode}
	}()
	select {
	case <-continued:
	case r := <-got:
		t.Fatalf("request ended before the handler read the body: %d %v", r.code, r.err)
	}
	exit := make(chan int, 1)
	go func() { exit <- stop() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "Proxy shutting down") {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown logged:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case code := <-exit:
		t.Fatalf("proxy exited (%d) with a request in flight; stderr:\n%s", code, stderr.String())
	default:
	}
	if _, err := pw.Write([]byte(`{"no_such_field":1}`)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-got
	if r.err != nil || r.code != http.StatusBadRequest {
		t.Fatalf("in-flight request = %d, %v; want it answered (400 from the store); stderr:\n%s", r.code, r.err, stderr.String())
	}
	if code := <-exit; code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
}

// TestProxyServeSIGHUP checks SIGHUP reloads the TLS certificate (the
// policy watcher does not), and that an unreadable one leaves the previous
// certificate serving. Not parallel: the signal goes to the whole test
// process, which holds its own SIGHUP subscription so that no moment
// between proxies leaves SIGHUP with its default action (exit).
func TestProxyServeSIGHUP(t *testing.T) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	dir := t.TempDir()
	certPath, keyPath, oldCA := writeTestCert(t, dir)
	url, _, stderr, stop := startProxy(t, "--tls-cert", certPath, "--tls-key", keyPath)
	get := func(pool *x509.CertPool) error {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		resp, err := client.Get(url + proxyapi.HealthPath)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	sighup := func(logged string) {
		t.Helper()
		before := strings.Count(stderr.String(), logged)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(stderr.String(), logged) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q logged after SIGHUP:\n%s", logged, stderr.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := get(oldCA); err != nil {
		t.Fatalf("first certificate: %v", err)
	}
	_, _, newCA := writeTestCert(t, dir) // a new CA's certificate at the same paths
	if err := get(newCA); err == nil {
		t.Fatal("the new certificate served before SIGHUP")
	}
	sighup("TLS certificate reloaded on SIGHUP.")
	if !strings.Contains(stderr.String(), "Policy checked on SIGHUP.") {
		t.Errorf("SIGHUP did not check the policy:\n%s", stderr.String())
	}
	if err := get(newCA); err != nil {
		t.Errorf("after SIGHUP the new certificate is not served: %v", err)
	}
	if err := get(oldCA); err == nil {
		t.Error("after SIGHUP the old certificate is still served")
	}
	if err := os.WriteFile(certPath, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup("TLS certificate not reloaded; the previous one keeps serving.")
	if err := get(newCA); err != nil {
		t.Errorf("after a SIGHUP with a broken certificate file the previous one is not served: %v", err)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("proxy serve exited %d; stderr:\n%s", code, stderr.String())
	}
}
