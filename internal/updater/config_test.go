package updater

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/fuzzwatch"
	"github.com/gravitational/teleport-update/internal/termtext"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

func TestConfigRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var/lib/teleport-update/update.yaml")
	cfg := NewConfig()
	cfg.Spec.Proxy = "proxy.example.com:443"
	cfg.Spec.Group = "staging"
	cfg.Status.Active = "16.4.6"
	cfg.Status.Skip = []string{"16.5.0"}
	cfg.Status.LastUpdate = &LastUpdate{Time: time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC), Target: "16.5.0", Error: "x", ErrorCode: "health_check"}
	if err := SaveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi.Mode(), err)
	}
	got, exists, err := LoadConfig(path)
	if err != nil || !exists {
		t.Fatal(exists, err)
	}
	if got.Spec.Proxy != cfg.Spec.Proxy || got.Status.Active != "16.4.6" || !got.Status.IsSkipped("16.5.0") || got.Status.LastUpdate.ErrorCode != "health_check" {
		t.Fatalf("round trip: %+v", got)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*"))
	if len(left) != 1 {
		t.Fatalf("temp files left: %v", left)
	}
}

func TestParseConfigStrict(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"empty", "", "empty"},
		{"wrong kind", "kind: other\nversion: v1\n", `kind is "other"`},
		{"wrong version", "kind: update_config\nversion: v2\n", `version is "v2"`},
		{"unknown field", "kind: update_config\nversion: v1\nspec:\n  proxyy: x\n", "proxyy"},
		{"two docs", "kind: update_config\nversion: v1\n---\nkind: update_config\nversion: v1\n", "more than one"},
		{"not yaml", "{{{", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in))
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v, want ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	if _, exists, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err != nil || exists {
		t.Fatalf("missing file: %v %v", exists, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, seed := range fuzzwatch.HardYAML() {
		f.Add(seed)
	}
	cfg := NewConfig()
	cfg.Spec.Proxy = "p:443"
	cfg.Status.Skip = []string{"1.0.0"}
	b, _ := cfg.Marshal()
	f.Add(b)
	f.Add([]byte("kind: update_config\nversion: v1\n"))
	f.Add([]byte("kind: update_config\nversion: v1\nstatus:\n  skip: [a, b]\n"))
	f.Add([]byte("kind: update_config\nversion: v1\nstatus:\n  active: {version: 1.0.0, flags: [Enterprise, FIPS]}\n  backup: 0.9.0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip.
		out, err := cfg.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseConfig(out); err != nil {
			t.Fatalf("re-parse of marshalled config: %v\n%s", err, out)
		}
	})
}

// TestConfigRevisions: update.yaml records the active and backup versions
// with their flavour as Teleport does, and still reads the plain version
// strings older files hold (community).
func TestConfigRevisions(t *testing.T) {
	cfg := NewConfig()
	cfg.Spec.Proxy = "p:443"
	cfg.Status.Active, cfg.Status.ActiveFlavour = "16.4.6", download.Flavour{Enterprise: true, FIPS: true}
	cfg.Status.Backup = "16.4.5"
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "status:\n  active:\n    version: 16.4.6\n    flags: [Enterprise, FIPS]\n  backup:\n    version: 16.4.5\n"
	if !strings.Contains(string(out), want) {
		t.Errorf("marshalled:\n%s\nwant it to hold:\n%s", out, want)
	}
	got, err := ParseConfig(out)
	if err != nil || got.Status.Active != "16.4.6" || got.Status.ActiveFlavour != cfg.Status.ActiveFlavour || got.Status.Backup != "16.4.5" || got.Status.BackupFlavour != (download.Flavour{}) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}

	old := "kind: update_config\nversion: v1\nspec:\n  proxy: p:443\n  enabled: true\n  pinned: false\nstatus:\n  active: 1.0.0\n  backup: 0.9.0\n  skip: [1.1.0]\n"
	got, err = ParseConfig([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Active != "1.0.0" || got.Status.Backup != "0.9.0" || got.Status.ActiveFlavour != (download.Flavour{}) || !got.Status.IsSkipped("1.1.0") {
		t.Fatalf("old file: %+v", got.Status)
	}
	// Teleport may record FIPS alone; it is an Enterprise build.
	got, err = ParseConfig([]byte("kind: update_config\nversion: v1\nstatus:\n  active: {version: 2.0.0, flags: [FIPS]}\n"))
	if err != nil || got.Status.ActiveFlavour != (download.Flavour{Enterprise: true, FIPS: true}) {
		t.Fatalf("FIPS alone: %+v, %v", got, err)
	}

	for name, in := range map[string]string{
		"unknown flag":      "active: {version: 2.0.0, flags: [Gold]}",
		"unknown field":     "active: {version: 2.0.0, edition: ent}",
		"flags, no version": "backup: {flags: [Enterprise]}",
		"list":              "active: [2.0.0]",
	} {
		if _, err := ParseConfig([]byte("kind: update_config\nversion: v1\nstatus:\n  " + in + "\n")); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", name, err)
		}
	}
}

func TestParseFindResponse(t *testing.T) {
	p, err := ParseFindResponse([]byte(`{"auto_update":{"agent_version":"16.4.6","agent_auto_update":true,"agent_update_jitter_seconds":99999,"agent_update_window":{"start":"2026-11-22T02:00:00Z","end":"2026-11-22T03:00:00Z"}},"extra":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version.String() != "16.4.6" || !p.AutoUpdate || p.Jitter != MaxJitter || p.Window == nil || p.Flavour != (download.Flavour{}) {
		t.Fatalf("%+v", p)
	}
	for body, want := range map[string]download.Flavour{
		`{"auto_update":{"agent_version":"1.0.0"},"edition":"oss"}`:             {},
		`{"auto_update":{"agent_version":"1.0.0"},"edition":"ent"}`:             {Enterprise: true},
		`{"auto_update":{"agent_version":"1.0.0"},"edition":"ent","fips":true}`: {Enterprise: true, FIPS: true},
	} {
		p, err := ParseFindResponse([]byte(body))
		if err != nil || p.Flavour != want {
			t.Errorf("%s: flavour %+v, %v; want %+v", body, p, err, want)
		}
	}
	if _, err := ParseFindResponse([]byte(`{"auto_update":{"agent_version":"1.0.0"},"edition":"gold"}`)); !errors.Is(err, ErrProxy) {
		t.Errorf("unknown edition: %v; want ErrProxy", err)
	}
}

// TestParseFindHold: the rollout's hold reason is kept for people to read:
// without escape sequences or control characters, cut between characters
// at api.MaxHoldLength bytes.
func TestParseFindHold(t *testing.T) {
	long := strings.Repeat("é", api.MaxHoldLength) // 2 bytes each
	for hold, want := range map[string]string{
		"": "",
		"group staging tries 2.0.0 on its canaries first": "group staging tries 2.0.0 on its canaries first",
		"halted\u001b[2J\u001b]0;owned\u0007 here\r\n":    "halted here",
		long:       long[:api.MaxHoldLength],
		"a" + long: "a" + long[:api.MaxHoldLength-2],
	} {
		body, err := json.Marshal(api.FindResponse{AutoUpdate: api.AutoUpdateSettings{AgentVersion: "1.0.0", AgentUpdateHold: hold}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseFindResponse(body)
		if err != nil {
			t.Fatalf("%q: %v", hold, err)
		}
		if p.Hold != want {
			t.Errorf("hold %q: got %q, want %q", hold, p.Hold, want)
		}
	}
}

func FuzzParseFindResponse(f *testing.F) {
	f.Add([]byte(`{"auto_update":{"agent_version":"16.4.6","agent_auto_update":true,"agent_update_jitter_seconds":60}}`))
	f.Add([]byte(`{"auto_update":{"agent_version":"1.2.3-rc.1+b5","agent_update_jitter_seconds":-1}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"auto_update":{"agent_version":"16.4.6"},"edition":"ent","fips":true}`))
	f.Add([]byte(`{"auto_update":{"agent_version":"1.0.0","agent_update_hold":"held\u001b[31m\u0085 by \u202erollout"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		p, err := ParseFindResponse(data)
		if err != nil {
			if !errors.Is(err, ErrProxy) {
				t.Fatalf("error not categorised: %v", err)
			}
			return
		}
		if p.Jitter < 0 || p.Jitter > MaxJitter {
			t.Fatalf("jitter out of range: %v", p.Jitter)
		}
		if strings.ContainsAny(p.Version.String(), "/?#% \\") {
			t.Fatalf("version carries URL characters: %q", p.Version)
		}
		if len(p.Hold) > api.MaxHoldLength || termtext.Strip(p.Hold) != p.Hold {
			t.Fatalf("hold reason not cleaned: %q", p.Hold)
		}
	})
}

func TestValidateProxyAddr(t *testing.T) {
	good := []string{"proxy.example.com", "proxy.example.com:443", "127.0.0.1:3080", "[::1]:443"}
	bad := []string{"", "https://proxy", "proxy/path", "user@proxy", "proxy:99999", "proxy:0", "pro xy", strings.Repeat("a", 300)}
	for _, s := range good {
		if err := ValidateProxyAddr(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range bad {
		if err := ValidateProxyAddr(s); !errors.Is(err, ErrProxy) {
			t.Errorf("%q: %v, want ErrProxy", s, err)
		}
	}
}

// fullConfig has every list and pointer of a Config set, so a deep copy
// has something to copy everywhere.
func fullConfig() *Config {
	cfg := NewConfig()
	cfg.Spec = Spec{Proxy: "proxy.example.com:443", Group: "staging", Enabled: true, Pinned: true, PinnedVersion: "1.0.0",
		Token: "t", InstallMethods: []string{"node_script", "systemd"}, CensusSalt: "s"}
	cfg.Status = Status{Active: "1.0.0", Backup: "0.9.0", Skip: []string{"2.0.0", "3.0.0"}, KnownGood: []string{"0.9.0", "1.0.0"},
		LastUpdate: &LastUpdate{Target: "2.0.0", Error: "x", Steps: []RunStep{{Name: "download", DurationMS: 5, Result: RunStepOK}}}, Switching: "2.0.0",
		Updater: UpdaterState{Version: "1.2.0", Format: StateFormat, FormatBy: "1.1.0", Switching: &SelfSwitch{From: "1.2.0", To: "1.3.0"},
			Last: &SelfUpdateResult{From: "1.1.0", To: "1.2.0", Success: true}}}
	return cfg
}

func TestConfigCloneIsDeep(t *testing.T) {
	orig := fullConfig()
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("clone differs:\n%+v\n%+v", c, orig)
	}
	// What install does to its attempt must not reach the original.
	c.Status.removeSkip("2.0.0")
	c.Status.addKnownGood("0.9.0")
	c.Spec.InstallMethods[0] = "changed"
	c.Status.LastUpdate.Error = "changed"
	if want := fullConfig(); !reflect.DeepEqual(orig, want) {
		t.Fatalf("changing the clone changed the original:\n got %+v\nwant %+v", orig, want)
	}
	// Every reference a Config holds is copied, including ones added later.
	checkNoSharedMemory(t, "Config", reflect.ValueOf(*orig.Clone()), reflect.ValueOf(*orig))
}

// checkNoSharedMemory fails when a and b (of the same type) share a slice,
// map or pointer target; it also fails on an unset reference in b, which
// fullConfig must then fill.
func checkNoSharedMemory(t *testing.T, path string, a, b reflect.Value) {
	t.Helper()
	switch b.Kind() {
	case reflect.Struct:
		if b.Type() == reflect.TypeFor[time.Time]() {
			return // a value; its location pointer is shared by design
		}
		for i := range b.NumField() {
			checkNoSharedMemory(t, path+"."+b.Type().Field(i).Name, a.Field(i), b.Field(i))
		}
	case reflect.Slice, reflect.Map, reflect.Pointer:
		if b.IsNil() || (b.Kind() != reflect.Pointer && b.Len() == 0) {
			t.Errorf("%s is empty in fullConfig; set it so the copy can be checked", path)
			return
		}
		if a.UnsafePointer() == b.UnsafePointer() {
			t.Errorf("%s is shared between the clone and the original", path)
		}
		if b.Kind() == reflect.Pointer {
			checkNoSharedMemory(t, path, a.Elem(), b.Elem())
		}
	}
}
