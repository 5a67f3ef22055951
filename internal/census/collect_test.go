package census

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
)

var (
	testSalt = []byte("0123456789abcdef0123456789abcdef")
	testNow  = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
)

func fixedNow() time.Time { return testNow }

func TestCollectFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture   string
		state     UpdaterState
		osVersion string
		glibc     string
		runtime   string
		cloud     string
		methods   []string
		machineID string // "" for a host without one
		services  []string
	}{
		{fixture: "debian", osVersion: "Debian GNU/Linux 12", glibc: "2.36", methods: []string{"teleport-update"}, machineID: "4a3b1c2d5e6f708192a3b4c5d6e7f809",
			services: []string{"app", "node"}},
		{fixture: "ubuntu", osVersion: "Ubuntu 22.04", glibc: "2.35", methods: []string{"teleport-update"}, machineID: "0123456789abcdef0123456789abcdef"},
		{fixture: "rhel", osVersion: "Red Hat Enterprise Linux 9.4", glibc: "2.34", methods: []string{"teleport-update"}},
		{fixture: "amazonlinux", osVersion: "Amazon Linux 2023", glibc: "2.34", cloud: api.CloudAWS, methods: []string{"teleport-update"}},
		{fixture: "alpine", osVersion: "Alpine Linux 3.20.3", glibc: "", methods: []string{"teleport-update"}},
		{fixture: "bare", osVersion: "", methods: []string{"teleport-update"}},
		{fixture: "lsbonly", osVersion: "Ubuntu 20.04", methods: []string{"teleport-update"}},
		{fixture: "docker", osVersion: "Debian GNU/Linux 12", runtime: api.RuntimeDocker,
			state:   UpdaterState{InstallMethods: []string{"dockerfile", "bogus"}},
			methods: []string{"dockerfile", "teleport-update"}},
		{fixture: "podman", osVersion: "Fedora Linux 40", runtime: api.RuntimePodman, methods: []string{"teleport-update"}},
		{fixture: "gcp", cloud: api.CloudGCP, methods: []string{"teleport-update"}},
		{fixture: "azure", cloud: api.CloudAzure, methods: []string{"teleport-update"}},
		{fixture: "hyperv", cloud: "", methods: []string{"teleport-update"}},
		// The unit file exists and systemd says it is active.
		{fixture: "systemd", state: UpdaterState{SystemdUnitActive: true, InstallMethods: []string{"node_script"}},
			methods: []string{"node_script", "systemctl", "teleport-update"}},
		// Active says nothing without the unit file; the unit file says nothing when inactive.
		{fixture: "debian", state: UpdaterState{SystemdUnitActive: true}, osVersion: "Debian GNU/Linux 12", glibc: "2.36",
			methods: []string{"teleport-update"}, machineID: "4a3b1c2d5e6f708192a3b4c5d6e7f809", services: []string{"app", "node"}},
		{fixture: "systemd", methods: []string{"teleport-update"}},
		// A missing root leaves every file probe empty.
		{fixture: "does-not-exist", methods: []string{"teleport-update"}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			st := tt.state
			st.Salt = testSalt
			st.Group = "staging"
			st.ActiveVersion = "v16.4.6"
			var hits atomic.Int32
			opts := Options{Now: fixedNow, Getenv: func(string) string { return "" }, metadata: countingMetadata(t, &hits)}
			r := Collect(context.Background(), filepath.Join("testdata", tt.fixture), st, opts)
			want := api.Report{
				Version:          "16.4.6",
				Services:         []string{},
				OS:               runtime.GOOS,
				OSVersion:        tt.osVersion,
				HostArchitecture: runtime.GOARCH,
				GlibcVersion:     tt.glibc,
				InstallMethods:   tt.methods,
				ContainerRuntime: tt.runtime,
				CloudEnvironment: tt.cloud,
				UpdateGroup:      "staging",
				UpdaterStatus:    api.StatusEnabled,
				ReportedAt:       testNow,
			}
			want.HostID = HostID(tt.machineID, testSalt)
			if tt.services != nil {
				want.Services = tt.services
			}
			if !reflect.DeepEqual(r, want) {
				t.Errorf("Collect(%s) =\n%+v\nwant\n%+v", tt.fixture, r, want)
			}
			if hits.Load() != 0 {
				t.Errorf("Collect asked the metadata endpoints %d times without AllowMetadataProbes", hits.Load())
			}
			// What Collect builds, the proxy accepts (given a host id), and
			// it names no host: the fixtures' machine ids and node names stay out.
			r.HostID = strings.Repeat("a", 64)
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, secret := range []string{"db-host-1", "4a3b1c2d5e6f708192a3b4c5d6e7f809", "0123456789abcdef0123456789abcdef", "proxy.example.com"} {
				if strings.Contains(string(b), secret) {
					t.Errorf("report contains %q: %s", secret, b)
				}
			}
			if _, err := api.DecodeReport(b); err != nil {
				t.Errorf("DecodeReport(Collect(%s)) = %v", tt.fixture, err)
			}
		})
	}
}

func TestCollectUpdaterState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		state UpdaterState
		check func(api.Report) bool
	}{
		{"disabled wins over pinned", UpdaterState{Disabled: true, Pinned: true}, func(r api.Report) bool { return r.UpdaterStatus == api.StatusDisabled }},
		{"pinned", UpdaterState{Pinned: true}, func(r api.Report) bool { return r.UpdaterStatus == api.StatusPinned }},
		{"enabled", UpdaterState{}, func(r api.Report) bool { return r.UpdaterStatus == api.StatusEnabled }},
		{"no salt, no host id", UpdaterState{}, func(r api.Report) bool { return r.HostID == "" }},
		{"short salt, no host id", UpdaterState{Salt: testSalt[:MinSaltSize-1]}, func(r api.Report) bool { return r.HostID == "" }},
		{"bad version dropped", UpdaterState{ActiveVersion: "latest"}, func(r api.Report) bool { return r.Version == "" }},
		{"services cleaned", UpdaterState{Services: []string{"node", "kube", "node", "Bad Name"}}, func(r api.Report) bool {
			return slices.Equal(r.Services, []string{"kube", "node"})
		}},
		{"last update kept", UpdaterState{LastUpdate: &api.UpdateResult{Time: testNow, Target: "v16.4.7", ErrorCode: "health_check"}}, func(r api.Report) bool {
			u := r.LastUpdateResult
			return u != nil && u.Target == "16.4.7" && !u.Success && u.ErrorCode == "health_check" && u.Time.Equal(testNow)
		}},
		{"success drops error code", UpdaterState{LastUpdate: &api.UpdateResult{Time: testNow, Target: "16.4.7", Success: true, ErrorCode: "x"}}, func(r api.Report) bool {
			return r.LastUpdateResult != nil && r.LastUpdateResult.ErrorCode == ""
		}},
		{"unusable last update dropped", UpdaterState{LastUpdate: &api.UpdateResult{Target: "16.4.7"}}, func(r api.Report) bool { return r.LastUpdateResult == nil }},
		{"group cleaned", UpdaterState{Group: "prod\x00\n"}, func(r api.Report) bool { return r.UpdateGroup == "prod" }},
		{"updater kept", UpdaterState{UpdaterVersion: "1.5.0", SelfUpdateError: "self_update: setup failed"}, func(r api.Report) bool {
			return r.UpdaterVersion == "1.5.0" && r.SelfUpdateError == "self_update: setup failed"
		}},
		{"bad updater fields dropped", UpdaterState{UpdaterVersion: "latest", SelfUpdateError: "a\nb"}, func(r api.Report) bool {
			return r.UpdaterVersion == "" && r.SelfUpdateError == ""
		}},
		{"updater id sent", UpdaterState{UpdaterID: "0b9e0c1a-6f4d-4c8e-9a51-2f6b7c8d9e0f"}, func(r api.Report) bool { return r.UpdaterID == "0b9e0c1a-6f4d-4c8e-9a51-2f6b7c8d9e0f" }},
		{"bad updater id dropped", UpdaterState{UpdaterID: "not-a-uuid"}, func(r api.Report) bool { return r.UpdaterID == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := Collect(context.Background(), "testdata/debian", tt.state, Options{Now: fixedNow})
			if !tt.check(r) {
				t.Errorf("Collect = %+v", r)
			}
			r.HostID = strings.Repeat("b", 64)
			if err := r.Validate(); err != nil {
				t.Errorf("Validate(Collect) = %v", err)
			}
		})
	}
}

func TestHostID(t *testing.T) {
	t.Parallel()
	const id = "4a3b1c2d5e6f708192a3b4c5d6e7f809"
	a := HostID(id, testSalt)
	if len(a) != 64 || refusedByProxy(func(r *api.Report) { r.HostID = a }) != nil || strings.Contains(a, id) {
		t.Errorf("HostID = %q, want 64 hex digits not containing the machine id", a)
	}
	if HostID(id, testSalt) != a {
		t.Errorf("HostID is not stable")
	}
	// Without a machine id: a different, stable, salt-keyed id.
	none := HostID("", testSalt)
	if len(none) != 64 || refusedByProxy(func(r *api.Report) { r.HostID = none }) != nil || none == a || HostID("", testSalt) != none {
		t.Errorf("HostID without machine id = %q", none)
	}
	if HostID(id, testSalt[:MinSaltSize-1]) != "" || HostID("", nil) != "" {
		t.Errorf("HostID with a short salt is not empty")
	}
	other := slices.Clone(testSalt)
	other[0] ^= 1
	if HostID(id, other) == a {
		t.Errorf("HostID does not depend on the salt")
	}
	s1, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := NewSalt()
	if len(s1) != SaltSize || slices.Equal(s1, s2) {
		t.Errorf("NewSalt gave %x and %x", s1, s2)
	}
}

func TestInstallMethodsFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  []string
		want []string
	}{
		{nil, []string{}},
		{[]string{"TELEPORT_INSTALL_METHOD_NODE_SCRIPT=true", "PATH=/bin"}, []string{"node_script"}},
		{[]string{"TELEPORT_INSTALL_METHOD_HELM_KUBE_AGENT=TRUE", "TELEPORT_INSTALL_METHOD_DOCKERFILE=1"}, []string{"dockerfile", "helm_kube_agent"}},
		{[]string{"TELEPORT_INSTALL_METHOD_DOCKERFILE=false", "TELEPORT_INSTALL_METHOD_NODE_SCRIPT="}, []string{}},
		{[]string{"TELEPORT_INSTALL_METHOD_TARBALL=true", "TELEPORT_INSTALL_METHOD_NODE_SCRIPT"}, []string{}},
		{[]string{"TELEPORT_INSTALL_METHOD_NODE_SCRIPT=yes", "TELEPORT_INSTALL_METHOD_NODE_SCRIPT=on"}, []string{"node_script"}},
	}
	for _, tt := range tests {
		if got := InstallMethodsFromEnv(tt.env); !slices.Equal(got, tt.want) {
			t.Errorf("InstallMethodsFromEnv(%q) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestCollectRealHost(t *testing.T) {
	t.Parallel()
	// On the machine running the tests: whatever it is, the report is valid.
	r := Collect(context.Background(), "/", UpdaterState{Salt: testSalt}, Options{Now: fixedNow})
	r.HostID = strings.Repeat("c", 64)
	if err := r.Validate(); err != nil {
		t.Errorf("report of this host is invalid: %v (%+v)", err, r)
	}
	if _, err := os.Stat("/lib/x86_64-linux-gnu/libc.so.6"); err == nil && r.GlibcVersion == "" {
		t.Errorf("this host has glibc, but GlibcVersion is empty")
	}
}

// kubeRoot returns a root with service-account files trusting srv.
func kubeRoot(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, filepath.FromSlash(serviceAccountDir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCollectKubernetes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		files   bool
		want    string
	}{
		{"eks", versionHandler(`{"major":"1","minor":"29+","gitVersion":"v1.29.4-eks-036c24b"}`), true, "kubernetes-v1.29.4-eks-036c24b"},
		{"forbidden", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusForbidden) }, true, OrchestratorKubernetesUnknown},
		{"garbage version", versionHandler(`{"gitVersion":"v1 <script>"}`), true, OrchestratorKubernetesUnknown},
		{"no gitVersion", versionHandler(`{}`), true, OrchestratorKubernetesUnknown},
		{"hangs past the budget", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, true, OrchestratorKubernetesUnknown},
		{"not in a pod", versionHandler(`{"gitVersion":"v1.30.0"}`), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var asked atomic.Int32
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked.Add(1)
				if r.URL.Path != "/version" || r.Header.Get("Authorization") != "Bearer sa-token" {
					http.Error(w, "bad request", http.StatusUnauthorized)
					return
				}
				tt.handler(w, r)
			}))
			defer srv.Close()
			root := t.TempDir()
			if tt.files {
				root = kubeRoot(t, srv)
			}
			host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			env := map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
			// HTTPClient is nil: Collect must trust exactly the service account's CA.
			r := Collect(context.Background(), root, UpdaterState{}, Options{Getenv: func(k string) string { return env[k] }})
			if r.ContainerOrchestrator != tt.want {
				t.Errorf("ContainerOrchestrator = %q, want %q", r.ContainerOrchestrator, tt.want)
			}
			if !tt.files && asked.Load() != 0 {
				t.Errorf("the API was asked without service-account files")
			}
		})
	}
}

func TestCollectKubernetesUntrustedCA(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(versionHandler(`{"gitVersion":"v1.30.0"}`))
	srv.Config.ErrorLog = discardLog() // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	root := kubeRoot(t, srv)
	// Replace ca.crt with another CA: the API's certificate no longer verifies.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(100 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(root, filepath.FromSlash(serviceAccountDir), "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	env := map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
	r := Collect(context.Background(), root, UpdaterState{}, Options{Getenv: func(k string) string { return env[k] }})
	if r.ContainerOrchestrator != OrchestratorKubernetesUnknown {
		t.Errorf("ContainerOrchestrator = %q with an untrusted API certificate, want %q", r.ContainerOrchestrator, OrchestratorKubernetesUnknown)
	}
}

// discardLog silences an httptest server's expected TLS handshake errors.
func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

func versionHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}
}

// countingMetadata returns endpoints that count every request.
func countingMetadata(t *testing.T, hits *atomic.Int32) *metadataEndpoints {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return &metadataEndpoints{aws: srv.URL + "/aws", gcp: srv.URL + "/gcp", azure: srv.URL + "/azure"}
}

func TestCollectMetadataProbes(t *testing.T) {
	t.Parallel()
	// A fake link-local metadata service that behaves like one cloud.
	fake := func(cloud string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			switch {
			case cloud == api.CloudAWS && r.URL.Path == "/aws" && r.Method == http.MethodPut && r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") != "":
				w.Write([]byte("token"))
			case cloud == api.CloudGCP && r.URL.Path == "/gcp" && r.Header.Get("Metadata-Flavor") == "Google":
				w.Header().Set("Metadata-Flavor", "Google")
				w.Write([]byte("1234"))
			case cloud == api.CloudGCP && r.URL.Path == "/gcp":
				http.Error(w, "missing header", http.StatusForbidden)
			case cloud == api.CloudAzure && r.URL.Path == "/azure" && r.Header.Get("Metadata") == "true":
				w.Write([]byte("AzurePublicCloud"))
			case cloud == "hang":
				<-r.Context().Done()
			default:
				http.NotFound(w, r)
			}
		}
	}
	tests := []struct {
		name    string
		fixture string
		server  string
		allow   bool
		want    string
	}{
		{"aws", "bare", api.CloudAWS, true, api.CloudAWS},
		{"gcp", "bare", api.CloudGCP, true, api.CloudGCP},
		{"azure", "bare", api.CloudAzure, true, api.CloudAzure},
		{"nothing answers", "bare", "none", true, ""},
		{"every endpoint hangs", "bare", "hang", true, ""},
		{"not allowed", "bare", api.CloudAWS, false, ""},
		{"dmi wins", "gcp", api.CloudAWS, true, api.CloudGCP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				fake(tt.server)(w, r)
			}))
			defer srv.Close()
			ep := &metadataEndpoints{aws: srv.URL + "/aws", gcp: srv.URL + "/gcp", azure: srv.URL + "/azure"}
			r := Collect(context.Background(), filepath.Join("testdata", tt.fixture), UpdaterState{},
				Options{AllowMetadataProbes: tt.allow, metadata: ep})
			if r.CloudEnvironment != tt.want {
				t.Errorf("CloudEnvironment = %q, want %q", r.CloudEnvironment, tt.want)
			}
			if (!tt.allow || tt.fixture != "bare") && hits.Load() != 0 {
				t.Errorf("metadata endpoints asked %d times, want none", hits.Load())
			}
		})
	}
}

func TestCloudFromDMI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		vendor, product, bios, board, tag, want string
	}{
		{"Amazon EC2", "m6i.large", "Amazon EC2", "Amazon EC2", "", api.CloudAWS},
		{"Xen", "HVM domU", "Amazon EC2", "", "", api.CloudAWS},
		{"Google", "Google Compute Engine", "Google", "Google", "", api.CloudGCP},
		{"", "Google Compute Engine", "", "", "", api.CloudGCP},
		{"Microsoft Corporation", "Virtual Machine", "", "", azureAssetTag, api.CloudAzure},
		{"Microsoft Corporation", "Virtual Machine", "", "", "", ""},
		{"QEMU", "Standard PC", "SeaBIOS", "", "", ""},
		{"", "", "", "", "", ""},
	}
	for _, tt := range tests {
		if got := CloudFromDMI(tt.vendor, tt.product, tt.bios, tt.board, tt.tag); got != tt.want {
			t.Errorf("CloudFromDMI(%q, %q, %q, %q, %q) = %q, want %q", tt.vendor, tt.product, tt.bios, tt.board, tt.tag, got, tt.want)
		}
	}
}

// TestCleanResultRunLog: the updater's message and run log reach the
// report in the form the proxy accepts, whatever they hold.
func TestCleanResultRunLog(t *testing.T) {
	t.Parallel()
	u := &api.UpdateResult{Time: testNow, Target: "16.4.6", ErrorCode: "health_check",
		Error: "proxy said \x1b[31mno\x1b[0m\tand " + strings.Repeat("é", api.MaxErrorLen),
		Steps: []api.RunStep{{Name: "download", DurationMS: 5, Result: "ok"}, {Name: "Bad Name", Result: "ok"}, {Name: "failed", DurationMS: 9, Result: "health_check"}}}
	c := cleanResult(u)
	if len(c.Error) > api.MaxErrorLen || strings.ContainsAny(c.Error, "\x1b\t") || !strings.HasPrefix(c.Error, "proxy said no and") {
		t.Errorf("error %.60q… (%d bytes) not cleaned", c.Error, len(c.Error))
	}
	if len(c.Steps) != 2 || c.Steps[0].Name != "download" || c.Steps[1].Name != "failed" {
		t.Errorf("steps %+v; want the two valid ones", c.Steps)
	}
	r := api.Report{HostID: strings.Repeat("a", 64), UpdaterStatus: api.StatusEnabled, ReportedAt: testNow, LastUpdateResult: c}
	if err := r.Validate(); err != nil {
		t.Errorf("the cleaned result is refused: %v", err)
	}
	u.Success = true
	if c := cleanResult(u); c.Error != "" {
		t.Errorf("a successful result keeps an error message %q", c.Error)
	}
}
