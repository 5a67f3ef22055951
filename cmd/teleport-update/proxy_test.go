package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/httpsig"
	"github.com/gravitational/teleport-update/internal/proxyapi"
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

// readAddrFile returns the address proxy serve wrote to its --addr-file,
// or "" while there is none.
func readAddrFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

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
	addrFile := filepath.Join(dir, "addr")
	args := append([]string{"proxy", "serve", "--resource", policyPath, "--listen", "127.0.0.1:0",
		"--addr-file", addrFile, "--tls-cert", certPath, "--tls-key", keyPath}, extra...)
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
		if addr := readAddrFile(t, addrFile); addr != "" {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			t.Cleanup(client.CloseIdleConnections)
			return "https://" + addr, client, &stderr, stop
		}
		select {
		case code := <-done:
			done <- code // for stop
			t.Fatalf("proxy serve exited with %d before listening; stderr:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy serve did not write its --addr-file; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProxyServe(t *testing.T) {
	t.Parallel()
	url, client, stderr, stop := startProxy(t)
	resp, err := client.Get(url + api.FindPath + "?group=staging")
	if err != nil {
		t.Fatal(err)
	}
	var fr api.FindResponse
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
	// TLS 1.2 with only CBC suites is refused; the proxy's AEAD suites work.
	pool := client.Transport.(*http.Transport).TLSClientConfig.RootCAs
	tls12 := func(suites ...uint16) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: suites}}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(url + proxyapi.HealthPath)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := tls12(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256); err == nil {
		t.Error("a TLS 1.2 client offering only CBC and RSA key exchange suites was served")
	}
	if err := tls12(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256); err != nil {
		t.Errorf("TLS 1.2 with ECDHE-ECDSA-AES128-GCM: %v", err)
	}
	if resp, err := client.Get(url + proxyapi.ReadyPath); err != nil {
		t.Error(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusOK {
		t.Errorf("readyz = %d; want 200", resp.StatusCode)
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
	req, err := http.NewRequest(http.MethodPost, url+api.CensusPath, strings.NewReader(`{"no_such_field":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	signCensus(t, req, []byte(`{"no_such_field":1}`))
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
	report, _ := json.Marshal(api.Report{HostID: strings.Repeat("a", 64), Version: "16.4.6", OS: "linux",
		HostArchitecture: "amd64", UpdaterStatus: api.StatusEnabled, ReportedAt: time.Now()})
	req, _ = http.NewRequest(http.MethodPost, url+api.CensusPath, bytes.NewReader(report))
	req.Header.Set("Authorization", "Bearer "+token)
	signCensus(t, req, report)
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+api.CensusPath, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Expect", "100-continue")
	signCensus(t, req, []byte(`{"no_such_field":1}`))
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

// get GETs url with client and returns the status code and body.
func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestProxyServeConnectionCapPerIP: with --max-connections-per-ip 2, a
// third connection from 127.0.0.1 is closed before its handshake while
// 127.0.0.2 still gets find answered.
func TestProxyServeConnectionCapPerIP(t *testing.T) {
	t.Parallel()
	url, client, stderr, _ := startProxy(t, "--max-connections-per-ip", "2")
	conf := client.Transport.(*http.Transport).TLSClientConfig
	addr := strings.TrimPrefix(url, "https://")
	dialFrom := func(ip string) (*tls.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}, Config: conf}
		c, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			return nil, err
		}
		return c.(*tls.Conn), nil
	}
	for i := range 2 {
		c, err := dialFrom("127.0.0.1")
		if err != nil {
			t.Fatalf("connection %d from 127.0.0.1: %v\n%s", i+1, err, stderr.String())
		}
		t.Cleanup(func() { c.Close() })
	}
	if c, err := dialFrom("127.0.0.1"); err == nil {
		c.Close()
		t.Fatal("a third connection from 127.0.0.1 was served; want it closed at --max-connections-per-ip 2")
	}
	other := &http.Client{Transport: &http.Transport{TLSClientConfig: conf,
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	t.Cleanup(other.CloseIdleConnections)
	if code, body := get(t, other, url+api.FindPath+"?group=staging"); code != http.StatusOK {
		t.Errorf("find from 127.0.0.2 = %d %s; want 200", code, body)
	}
}

// TestProxyServeCorruptCensusDB: a census database that is not one leaves
// find and install.sh served, census refused with 503 and /readyz 503;
// with --census-required the proxy refuses to start.
func TestProxyServeCorruptCensusDB(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "census.db")
	if err := os.WriteFile(db, bytes.Repeat([]byte("this is not an SQLite database\n"), 200), 0o600); err != nil {
		t.Fatal(err)
	}
	token := strings.Repeat("c", 40)
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - token: "+token+"\n    group: staging\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url, client, stderr, stop := startProxy(t, "--census-db", db, "--tokens", tokens)
	if code, body := get(t, client, url+api.FindPath+"?group=staging"); code != http.StatusOK {
		t.Errorf("find = %d %s; want 200", code, body)
	}
	if code, body := get(t, client, url+proxyapi.InstallScriptPath); code != http.StatusOK {
		t.Errorf("install.sh = %d %.200s; want 200", code, body)
	}
	code, body := get(t, client, url+proxyapi.ReadyPath)
	var rr proxyapi.ReadyResponse
	if err := json.Unmarshal([]byte(body), &rr); err != nil || code != http.StatusServiceUnavailable ||
		len(rr.Reasons) != 1 || !strings.Contains(rr.Reasons[0], "census") {
		t.Errorf("readyz = %d %s; want 503 naming the census", code, body)
	}
	req, _ := http.NewRequest(http.MethodPost, url+api.CensusPath, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("census = %d; want 503", resp.StatusCode)
	}
	if !strings.Contains(stderr.String(), "Census database could not be opened") || !strings.Contains(stderr.String(), db) {
		t.Errorf("the log does not name the census database and its problem:\n%s", stderr.String())
	}
	if code := stop(); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}

	certPath, keyPath, _ := writeTestCert(t, dir)
	var out lockedBuffer
	code = Run(context.Background(), []string{"proxy", "serve", "--resource", filepath.Join("..", "..", "resources", "autoupdate_version.yaml"),
		"--listen", "127.0.0.1:0", "--tls-cert", certPath, "--tls-key", keyPath, "--census-db", db, "--census-required"}, &out, &out)
	if code != exitFailure || !strings.Contains(out.String(), "census") || strings.Contains(out.String(), "Proxy listening") {
		t.Errorf("with --census-required: exit %d, output:\n%s\nwant exit 1 before listening, naming the census database", code, out.String())
	}
}

// waitLogged waits until log holds n lines containing msg, or fails.
func waitLogged(t *testing.T, log *lockedBuffer, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(log.String(), msg) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q not logged %d times within 30s:\n%s", msg, n, log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestProxyServeFIFOPolicy replaces the policy file with a named pipe no one
// writes to. The policy is refused (the last good one keeps serving),
// SIGHUP still reloads the certificate, and the proxy stops on request.
// Not parallel: see TestProxyServeSIGHUP.
func TestProxyServeFIFOPolicy(t *testing.T) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	dir := t.TempDir()
	certPath, keyPath, _ := writeTestCert(t, dir)
	policy := filepath.Join(dir, "policy.yaml")
	example, err := os.ReadFile(filepath.Join("..", "..", "resources", "autoupdate_version.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policy, example, 0o600); err != nil {
		t.Fatal(err)
	}
	url, _, stderr, stop := startProxy(t, "--tls-cert", certPath, "--tls-key", keyPath, "--resource", policy)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fifo, policy); err != nil {
		t.Fatal(err)
	}
	// Lets a reader stuck in open go, should the proxy block on the pipe.
	t.Cleanup(func() {
		if f, err := os.OpenFile(policy, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	_, _, newCA := writeTestCert(t, dir)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLogged(t, stderr, "TLS certificate reloaded on SIGHUP.", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: newCA}}}
	defer client.CloseIdleConnections()
	if code, body := get(t, client, url+api.FindPath+"?group=staging"); code != http.StatusOK || !strings.Contains(body, `"agent_version":"16.4.6"`) {
		t.Errorf("find with the new certificate = %d %s; want the last good policy", code, body)
	}
	if code := stop(); code != exitOK {
		t.Fatalf("proxy serve exited %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Policy file refused") || !strings.Contains(stderr.String(), "named pipe") {
		t.Errorf("the named pipe at the policy path was not refused:\n%s", stderr.String())
	}
}

// TestProxyServeSIGHUPDuringStartup signals a real proxy serve process while
// it starts: while it reads its --install-key, a named pipe the test holds
// open until the signal has been delivered. The proxy must survive,
// serve, and exit 0 on SIGTERM.
func TestProxyServeSIGHUPDuringStartup(t *testing.T) {
	t.Parallel()
	bin := testBinary(t)
	dir := t.TempDir()
	certPath, keyPath, pool := writeTestCert(t, dir)
	keyPipe := filepath.Join(dir, "install-key.pem")
	if err := syscall.Mkfifo(keyPipe, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(bin, "proxy", "serve", "--resource", filepath.Join("..", "..", "resources", "autoupdate_version.yaml"),
		"--listen", "127.0.0.1:0", "--addr-file", addrFile, "--tls-cert", certPath, "--tls-key", keyPath, "--install-key", keyPipe)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	// Opening the pipe for writing returns once the proxy opened it to read.
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(keyPipe, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
		}
		opened <- f
	}()
	var w *os.File
	select {
	case w = <-opened:
	case err := <-exited:
		t.Fatalf("proxy exited (%v) before reading --install-key:\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("proxy did not open --install-key within 30s:\n%s", stderr.String())
	}
	if w == nil {
		t.FailNow()
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitSignalDelivered(t, cmd.Process.Pid, syscall.SIGHUP)
	pub, err := os.ReadFile(filepath.Join("..", "..", "internal", "keys", "teleport-update-release.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pub); err != nil {
		t.Fatalf("write --install-key: %v (proxy gone?)\n%s", err, stderr.String())
	}
	w.Close()
	deadline := time.Now().Add(30 * time.Second)
	var addr string
	for addr == "" {
		if addr = readAddrFile(t, addrFile); addr != "" {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("proxy exited (%v) after SIGHUP during start-up; want it to survive:\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not listen within 30s:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	if code, body := get(t, client, "https://"+addr+api.FindPath); code != http.StatusOK {
		t.Errorf("find = %d %s", code, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("proxy exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("proxy did not exit within 30s of SIGTERM:\n%s", stderr.String())
	}
}

// waitSignalDelivered waits until sig is no longer pending for process pid
// (its handler ran), reading /proc/PID/status.
func waitSignalDelivered(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	bit := uint64(1) << (uint(sig) - 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return // gone: delivered, and fatal
		}
		pending := false
		for _, line := range strings.Split(string(status), "\n") {
			field, value, ok := strings.Cut(line, ":")
			if !ok || (field != "SigPnd" && field != "ShdPnd") {
				continue
			}
			mask, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
			if err == nil && mask&bit != 0 {
				pending = true
			}
		}
		if !pending {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("signal %v still pending for pid %d after 30s", sig, pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// signCensus signs a census report request with body as a host does.
func signCensus(t *testing.T, req *http.Request, body []byte) {
	t.Helper()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	if err := httpsig.Sign(req, body, key, time.Now()); err != nil {
		t.Fatal(err)
	}
}
