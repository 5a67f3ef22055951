package download

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

func TestParseVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"16.4.6", false},
		{"17.0.0-beta.1", false},
		{"17.0.0-dev.abcdef.123", false},
		{"1.2.3+build.5", false},
		{"0.0.1", false},
		{"v16.4.6", true},
		{"16.4", true},
		{"16", true},
		{"", true},
		{"16.4.6/../../evil", true},
		{"16.4.6?x=1", true},
		{"16.4.6#frag", true},
		{"16.4.6 ", true},
		{" 16.4.6", true},
		{"16.4.6\n", true},
		{"016.4.6", true},
		{"16.4.6-", true},
		{"16.4.6-a..b", true},
		{"16.4.6-%2e%2e", true},
		{"16.4.6-" + strings.Repeat("a", MaxVersionLength), true},
	}
	for _, tt := range tests {
		v, err := ParseVersion(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalidVersion) {
				t.Errorf("ParseVersion(%q) = %v, %v; want ErrInvalidVersion", tt.in, v, err)
			} else if q := quote(tt.in); !strings.Contains(err.Error(), q) {
				t.Errorf("ParseVersion(%q) error %q does not quote the input as %s", tt.in, err, q)
			}
			continue
		}
		if err != nil || v.String() != tt.in {
			t.Errorf("ParseVersion(%q) = %v, %v; want the version back", tt.in, v, err)
		}
	}
}

func mustVersion(t testing.TB, s string) *semver.Version {
	t.Helper()
	v, err := ParseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestArtifactNames(t *testing.T) {
	t.Parallel()
	a := Artifact{Product: ProductTeleport, Version: mustVersion(t, "16.4.6"), OS: "linux", Arch: "amd64"}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		a.TarballName():   "teleport-v16.4.6-linux-amd64-bin.tar.gz",
		a.ChecksumName():  "teleport-v16.4.6-linux-amd64-bin.tar.gz.sha256",
		a.BundleName():    "teleport-v16.4.6-linux-amd64-bin.tar.gz.sha256.sigstore.json",
		a.SignatureName(): "teleport-v16.4.6-linux-amd64-bin.tar.gz.sha256.sig",
	} {
		if got != want {
			t.Errorf("name = %q, want %q", got, want)
		}
	}
	u := Artifact{Product: ProductUpdater, Version: mustVersion(t, "1.0.0-rc.1"), OS: "linux", Arch: "arm64"}
	if got, want := u.TarballName(), "teleport-update-v1.0.0-rc.1-linux-arm64-bin.tar.gz"; got != want {
		t.Errorf("TarballName = %q, want %q", got, want)
	}
}

// Teleport's template: {base}/teleport{-ent}-v{version}-{os}-{arch}{-fips}-bin.tar.gz.
func TestArtifactEditionNames(t *testing.T) {
	t.Parallel()
	v := mustVersion(t, "16.4.6")
	tests := []struct {
		edition string
		fips    bool
		want    string
	}{
		{"", false, "teleport-v16.4.6-linux-amd64-bin.tar.gz"},
		{EditionCommunity, false, "teleport-v16.4.6-linux-amd64-bin.tar.gz"},
		{EditionOSS, false, "teleport-v16.4.6-linux-amd64-bin.tar.gz"},
		{EditionEnterprise, false, "teleport-ent-v16.4.6-linux-amd64-bin.tar.gz"},
		{EditionEnterprise, true, "teleport-ent-v16.4.6-linux-amd64-fips-bin.tar.gz"},
		// FIPS builds are Enterprise builds: Teleport's template adds -ent
		// for FIPS whatever the edition says.
		{"", true, "teleport-ent-v16.4.6-linux-amd64-fips-bin.tar.gz"},
		{EditionOSS, true, "teleport-ent-v16.4.6-linux-amd64-fips-bin.tar.gz"},
	}
	for _, tt := range tests {
		a := Artifact{Product: ProductTeleport, Version: v, OS: "linux", Arch: "amd64", Edition: tt.edition, FIPS: tt.fips}
		if err := a.Validate(); err != nil {
			t.Errorf("%q fips=%t: %v", tt.edition, tt.fips, err)
			continue
		}
		if got := a.TarballName(); got != tt.want {
			t.Errorf("%q fips=%t: TarballName = %q, want %q", tt.edition, tt.fips, got, tt.want)
		}
		if u, err := a.URL(DefaultBaseURL, a.ChecksumName()); err != nil || u != DefaultBaseURL+"/"+tt.want+".sha256" {
			t.Errorf("%q fips=%t: URL = %q, %v", tt.edition, tt.fips, u, err)
		}
	}
}

func TestParseEdition(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": EditionCommunity, "community": EditionCommunity, "oss": EditionCommunity, "ent": EditionEnterprise} {
		if got, err := ParseEdition(in); err != nil || got != want {
			t.Errorf("ParseEdition(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"enterprise", "ENT", "ent/../x", " ent"} {
		if _, err := ParseEdition(in); !errors.Is(err, ErrInvalidArtifact) {
			t.Errorf("ParseEdition(%q) = %v, want ErrInvalidArtifact", in, err)
		}
	}
}

func TestArtifactValidate(t *testing.T) {
	t.Parallel()
	v := mustVersion(t, "16.4.6")
	tests := []struct {
		name string
		a    Artifact
	}{
		{"unknown product", Artifact{Product: "tctl", Version: v, OS: "linux", Arch: "amd64"}},
		{"product with a slash", Artifact{Product: "../teleport", Version: v, OS: "linux", Arch: "amd64"}},
		{"no version", Artifact{Product: ProductTeleport, OS: "linux", Arch: "amd64"}},
		{"empty OS", Artifact{Product: ProductTeleport, Version: v, Arch: "amd64"}},
		{"upper-case OS", Artifact{Product: ProductTeleport, Version: v, OS: "Linux", Arch: "amd64"}},
		{"OS with a dash", Artifact{Product: ProductTeleport, Version: v, OS: "linux-x", Arch: "amd64"}},
		{"arch with a slash", Artifact{Product: ProductTeleport, Version: v, OS: "linux", Arch: "amd64/.."}},
		{"arch with a dot", Artifact{Product: ProductTeleport, Version: v, OS: "linux", Arch: "."}},
		{"unknown edition", Artifact{Product: ProductTeleport, Version: v, OS: "linux", Arch: "amd64", Edition: "enterprise"}},
		{"updater edition", Artifact{Product: ProductUpdater, Version: v, OS: "linux", Arch: "amd64", Edition: EditionEnterprise}},
		{"updater FIPS", Artifact{Product: ProductUpdater, Version: v, OS: "linux", Arch: "amd64", FIPS: true}},
	}
	for _, tt := range tests {
		if err := tt.a.Validate(); !errors.Is(err, ErrInvalidArtifact) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidArtifact", tt.name, err)
		}
		if _, err := tt.a.URL(DefaultBaseURL, tt.a.TarballName()); !errors.Is(err, ErrInvalidArtifact) {
			t.Errorf("%s: URL() error = %v, want ErrInvalidArtifact", tt.name, err)
		}
	}
}

func TestArtifactURL(t *testing.T) {
	t.Parallel()
	a := Artifact{Product: ProductTeleport, Version: mustVersion(t, "16.4.6+build.1"), OS: "linux", Arch: "amd64"}
	tests := []struct {
		base, file string
		want       string
		wantErr    error
	}{
		{DefaultBaseURL, a.TarballName(), "https://cdn.teleport.dev/teleport-v16.4.6+build.1-linux-amd64-bin.tar.gz", nil},
		{"https://cdn.teleport.dev/", a.ChecksumName(), "https://cdn.teleport.dev/teleport-v16.4.6+build.1-linux-amd64-bin.tar.gz.sha256", nil},
		{"https://mirror.example:8443/teleport/", a.BundleName(), "https://mirror.example:8443/teleport/teleport-v16.4.6+build.1-linux-amd64-bin.tar.gz.sha256.sigstore.json", nil},
		{"https://mirror.example/a/b", a.SignatureName(), "https://mirror.example/a/b/teleport-v16.4.6+build.1-linux-amd64-bin.tar.gz.sha256.sig", nil},
		{"https://mirror.example/with%20space/", a.TarballName(), "https://mirror.example/with%20space/teleport-v16.4.6+build.1-linux-amd64-bin.tar.gz", nil},
		{"http://cdn.teleport.dev", a.TarballName(), "", ErrInsecureURL},
		{DefaultBaseURL, "../etc/passwd", "", ErrInvalidArtifact},
		{DefaultBaseURL, "teleport-v1.0.0-linux-amd64-bin.tar.gz", "", ErrInvalidArtifact},
	}
	for _, tt := range tests {
		got, err := a.URL(tt.base, tt.file)
		if !errors.Is(err, tt.wantErr) || got != tt.want {
			t.Errorf("URL(%q, %q) = %q, %v; want %q, %v", tt.base, tt.file, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"16.4.6", "17.0.0-beta.1", "1.2.3+build.5", "v1.2.3", "1.2", "1.2.3/../x", "1.2.3-a..b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzwatch.Start()()
		v, err := ParseVersion(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidVersion) {
				t.Fatalf("ParseVersion(%q) error %v does not wrap ErrInvalidVersion", s, err)
			}
			return
		}
		if v.String() != s {
			t.Fatalf("ParseVersion(%q) round-trips to %q", s, v.String())
		}
		if strings.ContainsAny(s, "/\\?#%:@ \t\r\n") || strings.Contains(s, "..") {
			t.Fatalf("ParseVersion accepted %q with path or URL characters", s)
		}
		a := Artifact{Product: ProductTeleport, Version: v, OS: "linux", Arch: "amd64"}
		raw, err := a.URL(DefaultBaseURL, a.TarballName())
		if err != nil {
			t.Fatalf("URL for accepted version %q: %v", s, err)
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host != "cdn.teleport.dev" || u.Path != "/"+a.TarballName() || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("URL for version %q = %q escapes its place", s, raw)
		}
	})
}

func FuzzValidateBaseURL(f *testing.F) {
	for _, s := range []string{DefaultBaseURL, "https://mirror.example:8443/teleport/", "http://cdn.teleport.dev", "https://u@h/", "https://h/?q", "https://h/#f", "https://h/a/../b", "https:h", ""} {
		f.Add(s)
	}
	a := Artifact{Product: ProductTeleport, Version: semver.New(16, 4, 6, "", ""), OS: "linux", Arch: "amd64"}
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzwatch.Start()()
		err := ValidateBaseURL(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidBaseURL) && !errors.Is(err, ErrInsecureURL) {
				t.Fatalf("ValidateBaseURL(%q) error %v wraps neither sentinel", s, err)
			}
			return
		}
		base, err := url.Parse(s)
		if err != nil || base.Scheme != "https" || base.Hostname() == "" || base.User != nil || base.RawQuery != "" || base.Fragment != "" {
			t.Fatalf("ValidateBaseURL accepted %q (%+v, %v)", s, base, err)
		}
		raw, err := a.URL(s, a.TarballName())
		if err != nil {
			t.Fatalf("URL under accepted base %q: %v", s, err)
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host != base.Host || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
			!strings.HasSuffix(u.Path, "/"+a.TarballName()) || !strings.HasPrefix(u.Path, strings.TrimSuffix(base.Path, "/")) {
			t.Fatalf("URL under base %q = %q leaves the base", s, raw)
		}
	})
}

// TestFlavour: the find answer's edition and fips, and update.yaml's flags,
// give the same flavours, FIPS always implying Enterprise.
func TestFlavour(t *testing.T) {
	t.Parallel()
	tests := []struct {
		edition string
		fips    bool
		want    Flavour
		flags   []string
		str     string
	}{
		{"", false, Flavour{}, nil, "community"},
		{"oss", false, Flavour{}, nil, "community"},
		{"community", false, Flavour{}, nil, "community"},
		{"ent", false, Flavour{Enterprise: true}, []string{"Enterprise"}, "Enterprise"},
		{"ent", true, Flavour{Enterprise: true, FIPS: true}, []string{"Enterprise", "FIPS"}, "Enterprise FIPS"},
		{"community", true, Flavour{Enterprise: true, FIPS: true}, []string{"Enterprise", "FIPS"}, "Enterprise FIPS"},
	}
	for _, tt := range tests {
		got, err := NewFlavour(tt.edition, tt.fips)
		if err != nil || got != tt.want {
			t.Errorf("NewFlavour(%q, %t) = %+v, %v; want %+v", tt.edition, tt.fips, got, err, tt.want)
		}
		if !slices.Equal(got.Flags(), tt.flags) || got.String() != tt.str {
			t.Errorf("%+v: Flags %q String %q; want %q %q", got, got.Flags(), got.String(), tt.flags, tt.str)
		}
		back, err := ParseFlags(got.Flags())
		if err != nil || back != got {
			t.Errorf("ParseFlags(%q) = %+v, %v; want %+v", got.Flags(), back, err, got)
		}
	}
	if f, err := ParseFlags([]string{"FIPS"}); err != nil || f != (Flavour{Enterprise: true, FIPS: true}) {
		t.Errorf("ParseFlags([FIPS]) = %+v, %v; want Enterprise FIPS", f, err)
	}
	for _, bad := range [][]string{{"enterprise"}, {"Enterprise", "Enterprise"}, {""}} {
		if f, err := ParseFlags(bad); !errors.Is(err, ErrInvalidArtifact) {
			t.Errorf("ParseFlags(%q) = %+v, %v; want ErrInvalidArtifact", bad, f, err)
		}
	}
	if f, err := NewFlavour("enterprise", false); !errors.Is(err, ErrInvalidArtifact) {
		t.Errorf("NewFlavour(enterprise) = %+v, %v; want ErrInvalidArtifact", f, err)
	}
}
