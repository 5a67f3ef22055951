// Package pgtest runs a throwaway PostgreSQL cluster for tests: Debian's
// postgresql binaries, initdb in a temporary directory, one free loopback
// port, password authentication and TLS with a certificate made for the
// run, all removed at the end.
//
// When running as root the cluster runs as the unprivileged user nobody
// (PostgreSQL refuses to run as root). Without the binaries, or without
// root and the binaries, the tests that need a cluster skip loudly; with
// CI=true they fail instead, since CI must test both census backends.
package pgtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// User is the cluster's superuser, who owns every test database.
const User = "postgres"

// unprivileged is the user the cluster runs as when the tests run as root.
const unprivileged = 65534 // nobody / nogroup on Debian

// Server is one running cluster.
type Server struct {
	dir      string // the temporary directory holding data, certificates and log
	data     string
	bin      string
	port     int
	password string
	// CAFile is the PEM certificate of the CA that signed the server's
	// certificate (for 127.0.0.1 and localhost): sslmode=verify-full
	// with sslrootcert=CAFile connects.
	CAFile string
	asRoot bool
	dbs    atomic.Int64
}

// binDir finds the directory of initdb, pg_ctl and postgres: Debian keeps
// them in /usr/lib/postgresql/VERSION/bin, off PATH. The newest version
// wins.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries (install Debian's postgresql package; scripts/test.sh does as root)")
}

// Start initializes and starts a cluster in a new temporary directory.
// Stop removes it.
func Start(ctx context.Context) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, data: filepath.Join(dir, "data"), bin: bin, asRoot: os.Geteuid() == 0,
		CAFile: filepath.Join(dir, "ca.crt")}
	if err := s.setup(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// setup runs initdb, writes the configuration and TLS files and starts the
// server.
func (s *Server) setup(ctx context.Context) error {
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return err
	}
	s.password = hex.EncodeToString(pw)
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return err
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Mkdir(s.data, 0o700); err != nil {
		return err
	}
	if err := s.own(pwfile, s.data); err != nil {
		return err
	}
	if out, err := s.run(ctx, "initdb", "-D", s.data, "-U", User, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	if err := s.writeTLS(); err != nil {
		return fmt.Errorf("TLS files: %w", err)
	}
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
max_connections = 200
`, port, s.data)
	f, err := os.OpenFile(filepath.Join(s.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(conf)
	if err := errors.Join(werr, f.Close()); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Start starts the (stopped) server and waits until it accepts
// connections.
func (s *Server) Start(ctx context.Context) error {
	out, err := s.run(ctx, "pg_ctl", "-D", s.data, "-l", filepath.Join(s.data, "server.log"), "-w", "-t", "60", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.data, "server.log"))
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, log)
	}
	return nil
}

// Crash stops the server at once, as a power cut would to the processes
// (pg_ctl stop -m immediate: no checkpoint, recovery replays the WAL on
// the next start).
func (s *Server) Crash(ctx context.Context) error {
	if out, err := s.run(ctx, "pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	if _, err := os.Stat(filepath.Join(s.data, "postmaster.pid")); err == nil {
		_, _ = s.run(context.Background(), "pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop")
	}
	_ = os.RemoveAll(s.dir) // best effort: a temporary directory
}

// Port is the server's loopback TCP port.
func (s *Server) Port() int { return s.port }

// Password is the superuser's password.
func (s *Server) Password() string { return s.password }

// URL returns the URL of database db as the superuser, with the password
// and sslmode=disable.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(User, s.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates a new, empty database and returns its name.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), s.dbs.Add(1))
	out, err := s.run(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", s.data, "-p", strconv.Itoa(s.port),
		"-U", User, "-d", "postgres", "-c", "CREATE DATABASE "+name)
	if err != nil {
		return "", fmt.Errorf("create database: %w: %s", err, out)
	}
	return name, nil
}

// run runs one of the server's programs, as nobody when running as root.
func (s *Server) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, prog)
	if _, err := os.Stat(path); err != nil {
		if p, lerr := exec.LookPath(prog); lerr == nil {
			path = p
		}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	if s.asRoot {
		cmd = exec.CommandContext(ctx, "setpriv", append([]string{"--reuid", strconv.Itoa(unprivileged),
			"--regid", strconv.Itoa(unprivileged), "--clear-groups", path}, args...)...)
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C", "HOME="+s.dir, "PGPASSWORD=")
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

// own gives paths to the unprivileged user when running as root.
func (s *Server) own(paths ...string) error {
	if !s.asRoot {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, unprivileged, unprivileged); err != nil {
			return err
		}
	}
	return nil
}

// writeTLS makes a CA and a server certificate for 127.0.0.1 and
// localhost signed by it, valid for a day.
func (s *Server) writeTLS() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgtest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return err
	}
	files := []struct {
		path, kind string
		der        []byte
	}{
		{s.CAFile, "CERTIFICATE", caDER},
		{filepath.Join(s.data, "server.crt"), "CERTIFICATE", srvDER},
		{filepath.Join(s.data, "server.key"), "EC PRIVATE KEY", keyDER},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der}), 0o600); err != nil {
			return err
		}
	}
	if err := os.Chmod(s.CAFile, 0o644); err != nil {
		return err
	}
	return s.own(files[1].path, files[2].path)
}

// freePort returns a loopback TCP port nothing listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// shared is the cluster of a test binary, started by Main.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Main runs a test binary's tests with a shared cluster started on first
// use, and stops it at the end. Use it as TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	if shared.err != nil && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "\n###########################################################\n"+
			"## POSTGRESQL TESTS SKIPPED: %v\n"+
			"###########################################################\n", shared.err)
	}
	return code
}

// Shared returns the test binary's cluster, starting it on first use. When
// it cannot start, the test fails under CI=true and skips otherwise.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.srv, shared.err = Start(ctx)
	})
	if shared.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required under CI=true: %v", shared.err)
		}
		t.Skipf("POSTGRESQL TEST SKIPPED: %v", shared.err)
	}
	return shared.srv
}

// Database returns the URL of a new, empty database on the shared cluster
// (see Shared).
func Database(t testing.TB) string {
	t.Helper()
	srv := Shared(t)
	name, err := srv.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL(name)
}

// Fresh starts a cluster for one test (one it may crash and restart)
// and returns it; it is stopped when the test ends. It fails or skips
// like Shared.
func Fresh(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := Start(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required under CI=true: %v", err)
		}
		t.Skipf("POSTGRESQL TEST SKIPPED: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// FreshDatabase starts a cluster for one test, as Fresh does, and returns
// it with the URL of a new, empty database on it.
func FreshDatabase(t testing.TB) (*Server, string) {
	t.Helper()
	srv := Fresh(t)
	name, err := srv.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return srv, srv.URL(name)
}
