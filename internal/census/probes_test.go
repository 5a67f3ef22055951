package census

import (
	"reflect"
	"slices"
	"testing"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

// refusedByProxy returns the error the proxy's validation gives a minimal
// report changed by edit: nil when the proxy would accept it.
func refusedByProxy(edit func(*api.Report)) error {
	r := api.Report{UpdaterStatus: api.StatusEnabled, ReportedAt: testNow}
	edit(&r)
	return r.Validate()
}

func TestParseOSRelease(t *testing.T) {
	t.Parallel()
	in := `# comment
NAME="Red Hat \"Enterprise\" Linux"
VERSION_ID=9.4
ID='rhel'
PRETTY_NAME="unterminated
BAD KEY=x
ANSI_COLOR="0;31"  
EMPTY=
UNQUOTED=has space
`
	got := ParseOSRelease([]byte(in))
	want := map[string]string{"NAME": `Red Hat "Enterprise" Linux`, "VERSION_ID": "9.4", "ID": "rhel", "ANSI_COLOR": "0;31", "EMPTY": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseOSRelease = %q, want %q", got, want)
	}
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte("NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\n"))
	f.Add([]byte("NAME='Fedora Linux'\nVERSION_ID=40\n"))
	f.Add([]byte("NAME=\"a\\\"b\\\\\"\nX=\"unterminated\n"))
	f.Add([]byte("=\n==\n#\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		for k := range ParseOSRelease(data) {
			if !isEnvKey(k) {
				t.Fatalf("key %q is not a variable name", k)
			}
		}
	})
}

func TestGlibcVersionFromLibc(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{"\x00GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n", "2.36"},
		{"GNU C Library (GNU libc) stable release version 2.34.", "2.34"},
		{"GNU C Library (GNU libc) development release version 2.40.9000.", "2.40.9000"},
		{"GNU C Library: nothing here\nversion 2.1", ""},
		{"GNU C Library first\x00 then GNU C Library (x) stable release version 2.17.", "2.17"},
		{"musl libc (x86_64) Version 1.2.5", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := GlibcVersionFromLibc([]byte(tt.in)); got != tt.want {
			t.Errorf("GlibcVersionFromLibc(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzGlibcVersionFromLibc(f *testing.F) {
	f.Add([]byte("GNU C Library (GNU libc) stable release version 2.34."))
	f.Add([]byte("GNU C Library GNU C Library version 1.2"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		if v := GlibcVersionFromLibc(data); refusedByProxy(func(r *api.Report) { r.GlibcVersion = v }) != nil {
			t.Fatalf("version %q would be refused by the proxy", v)
		}
	})
}

func TestServicesFromConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, config string
		want         []string
	}{
		{"node script", "version: v3\nauth_service:\n  enabled: \"no\"\nproxy_service:\n  enabled: \"no\"\nssh_service:\n  enabled: \"yes\"\n", []string{"node"}},
		{"defaults", "version: v3\nteleport:\n  nodename: x\n", []string{"auth", "node", "proxy"}},
		{"kube agent", "auth_service: {enabled: false}\nproxy_service: {enabled: false}\nssh_service: {enabled: false}\nkubernetes_service: {enabled: true}\n", []string{"kube"}},
		{"db and desktop", "auth_service: {enabled: off}\nproxy_service: {enabled: off}\nssh_service: {enabled: off}\ndb_service: {enabled: yes}\nwindows_desktop_service: {enabled: on}\ndiscovery_service: {enabled: no}\n", []string{"db", "windows_desktop"}},
		{"not a mapping", "- a\n- b\n", nil},
		{"not yaml", "{{{", nil},
		{"odd shapes", "ssh_service: [1, 2]\napp_service:\n  enabled: yes\n", []string{"app", "auth", "node", "proxy"}},
	}
	for _, tt := range tests {
		if got := ServicesFromConfig([]byte(tt.config)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: ServicesFromConfig = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func FuzzServicesFromConfig(f *testing.F) {
	for _, seed := range fuzzwatch.HardYAML() {
		f.Add(seed)
	}
	f.Add([]byte("ssh_service:\n  enabled: yes\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("app_service: {enabled: [x]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		for _, s := range ServicesFromConfig(data) {
			if !api.ValidWord(s) {
				t.Fatalf("service %q would be refused", s)
			}
		}
	})
}
