package download

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/endpoint"
	"github.com/gravitational/teleport-update/internal/updater/verify"
	"github.com/gravitational/teleport-update/internal/version"
)

// DefaultBaseURL is the built-in CDN base. A host may override it with
// --base-url, which must pass ValidateBaseURL.
const DefaultBaseURL = "https://cdn.teleport.dev"

// Limits on names built into URLs.
const (
	// MaxVersionLength bounds a version string (see ParseVersion).
	MaxVersionLength = version.MaxLength
	// MaxBaseURLLength bounds a configured base URL.
	MaxBaseURLLength = endpoint.MaxBaseURLLength
)

// Products whose artifacts the updater fetches.
const (
	ProductTeleport = "teleport"
	ProductUpdater  = "teleport-update"
)

var (
	// ErrInvalidVersion means a version string is not strict semver. It is
	// version.ErrInvalid, which every version check in the system wraps.
	ErrInvalidVersion = version.ErrInvalid
	// ErrInvalidArtifact means an Artifact has an unknown product, a missing
	// version, or an OS/arch outside [a-z0-9]+.
	ErrInvalidArtifact = errors.New("invalid artifact")
	// ErrInvalidBaseURL means a base URL is malformed or carries parts the
	// updater refuses (user info, query, fragment, dot segments). It is
	// endpoint.ErrInvalidBaseURL.
	ErrInvalidBaseURL = endpoint.ErrInvalidBaseURL
	// ErrInsecureURL means a URL is not https://. It is
	// endpoint.ErrInsecureURL.
	ErrInsecureURL = endpoint.ErrInsecureURL
)

// quote returns s quoted for an error message, truncated to a readable length.
func quote(s string) string { return endpoint.Quote(s) }

// ParseVersion parses s as a strict semantic version ("16.4.6",
// "17.0.0-beta.1"): no leading "v", no missing parts, no characters other
// than semver's [0-9A-Za-z.+-], so a parsed version can never carry path or
// URL syntax. The error wraps ErrInvalidVersion and quotes s. It is
// version.Parse, named here because every artifact name starts from it.
func ParseVersion(s string) (*semver.Version, error) { return version.Parse(s) }

// Teleport editions, as the proxy's find answer names them (api's names).
// Community and "oss" are the same build; an empty edition means community.
const (
	EditionCommunity  = api.EditionCommunity
	EditionOSS        = api.EditionOSS
	EditionEnterprise = api.EditionEnterprise
)

// Flavour is which build of a Teleport release a host runs: Enterprise or
// community, FIPS or not. A FIPS build is always an Enterprise build, as
// Teleport publishes them; NewFlavour and ParseFlags keep that true. The
// zero Flavour is community.
type Flavour struct {
	Enterprise bool
	FIPS       bool
}

// Flag names of a Flavour, as Teleport's update.yaml records them
// (status.active.flags: [Enterprise, FIPS]).
const (
	FlagEnterprise = "Enterprise"
	FlagFIPS       = "FIPS"
)

// NewFlavour returns the flavour a find answer's edition and fips name
// (FIPS implies Enterprise). An unknown edition wraps ErrInvalidArtifact.
func NewFlavour(edition string, fips bool) (Flavour, error) {
	e, err := ParseEdition(edition)
	if err != nil {
		return Flavour{}, err
	}
	return Flavour{Enterprise: e == EditionEnterprise || fips, FIPS: fips}, nil
}

// ParseFlags returns the flavour of Teleport's flag names (FIPS implies
// Enterprise). An unknown or repeated flag wraps ErrInvalidArtifact.
func ParseFlags(flags []string) (Flavour, error) {
	var f Flavour
	seen := map[string]bool{}
	for _, s := range flags {
		if seen[s] {
			return Flavour{}, fmt.Errorf("%w: flag %s given twice", ErrInvalidArtifact, quote(s))
		}
		seen[s] = true
		switch s {
		case FlagEnterprise:
			f.Enterprise = true
		case FlagFIPS:
			f.FIPS, f.Enterprise = true, true
		default:
			return Flavour{}, fmt.Errorf("%w: unknown flag %s (want %s or %s)", ErrInvalidArtifact, quote(s), FlagEnterprise, FlagFIPS)
		}
	}
	return f, nil
}

// Flags returns f's flag names, Enterprise first; nil for community.
func (f Flavour) Flags() []string {
	var out []string
	if f.Enterprise || f.FIPS {
		out = append(out, FlagEnterprise)
	}
	if f.FIPS {
		out = append(out, FlagFIPS)
	}
	return out
}

// Edition is f's edition as the find answer names it.
func (f Flavour) Edition() string {
	if f.Enterprise || f.FIPS {
		return EditionEnterprise
	}
	return EditionCommunity
}

// String names f for people: "community", "Enterprise" or
// "Enterprise FIPS".
func (f Flavour) String() string {
	if flags := f.Flags(); len(flags) > 0 {
		return strings.Join(flags, " ")
	}
	return EditionCommunity
}

// Artifact names one release tarball on the CDN.
type Artifact struct {
	Product string // ProductTeleport or ProductUpdater
	Version *semver.Version
	OS      string // GOOS, e.g. "linux"
	Arch    string // GOARCH, e.g. "amd64"
	// Edition is "", EditionCommunity, EditionOSS or EditionEnterprise. Only
	// Teleport itself comes in editions.
	Edition string
	// FIPS selects the FIPS build (Teleport itself only). A FIPS build is
	// an Enterprise build whatever Edition says, as in Teleport's template.
	FIPS bool
}

// ParseEdition checks an edition name from the proxy or a flag and returns
// it canonical with api.ParseEdition: EditionEnterprise, or
// EditionCommunity for "", "community" and "oss". Anything else wraps
// ErrInvalidArtifact and api.ErrInvalidEdition.
func ParseEdition(s string) (string, error) {
	e, err := api.ParseEdition(s)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidArtifact, err)
	}
	return e, nil
}

// Validate reports whether a can be turned into file names: a known product,
// a version, and OS/arch made of [a-z0-9]+. Errors wrap ErrInvalidArtifact.
func (a Artifact) Validate() error {
	switch a.Product {
	case ProductTeleport, ProductUpdater:
	default:
		return fmt.Errorf("%w: unknown product %s", ErrInvalidArtifact, quote(a.Product))
	}
	if a.Version == nil {
		return fmt.Errorf("%w: no version", ErrInvalidArtifact)
	}
	if _, err := ParseVersion(a.Version.String()); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArtifact, err)
	}
	if !isLowerAlnum(a.OS) {
		return fmt.Errorf("%w: OS %s is not [a-z0-9]+", ErrInvalidArtifact, quote(a.OS))
	}
	if !isLowerAlnum(a.Arch) {
		return fmt.Errorf("%w: arch %s is not [a-z0-9]+", ErrInvalidArtifact, quote(a.Arch))
	}
	edition, err := ParseEdition(a.Edition)
	if err != nil {
		return err
	}
	if a.Product != ProductTeleport && (edition != EditionCommunity || a.FIPS) {
		return fmt.Errorf("%w: %s has no editions or FIPS builds", ErrInvalidArtifact, a.Product)
	}
	return nil
}

func isLowerAlnum(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// TarballName returns Teleport's published name,
// "{product}{-ent}-v{ver}-{os}-{arch}{-fips}-bin.tar.gz", where "-ent" is
// there for Enterprise and for FIPS (Teleport publishes FIPS builds of
// Enterprise only). Call Validate first; the name of an invalid artifact is
// meaningless.
func (a Artifact) TarballName() string {
	ver := ""
	if a.Version != nil {
		ver = a.Version.String()
	}
	product, fips := a.Product, ""
	if a.Edition == EditionEnterprise || a.FIPS {
		product += "-ent"
	}
	if a.FIPS {
		fips = "-fips"
	}
	return product + "-v" + ver + "-" + a.OS + "-" + a.Arch + fips + "-bin.tar.gz"
}

// ChecksumName returns the name of the tarball's sha256sum-format file.
func (a Artifact) ChecksumName() string { return a.TarballName() + verify.ChecksumSuffix }

// BundleName returns the name of the Sigstore bundle over the checksum file.
func (a Artifact) BundleName() string { return a.TarballName() + verify.BundleSuffix }

// SignatureName returns the name of the base64 DER signature over the
// checksum file (for install.sh's openssl check).
func (a Artifact) SignatureName() string { return a.TarballName() + verify.SignatureSuffix }

// URL returns the URL of file (one of a's names) under base. base keeps its
// path prefix, so a mirror at https://mirror.example/teleport/ works. The
// artifact and base are validated; file must be a plain name.
func (a Artifact) URL(base, file string) (string, error) {
	if err := a.Validate(); err != nil {
		return "", err
	}
	switch file {
	case a.TarballName(), a.ChecksumName(), a.BundleName(), a.SignatureName():
	default:
		return "", fmt.Errorf("%w: %s is not a file of %s", ErrInvalidArtifact, quote(file), a.TarballName())
	}
	u, err := endpoint.ParseBaseURL(base)
	if err != nil {
		return "", err
	}
	// Append without cleaning, so the base's path is kept byte for byte.
	// The names need no escaping: they are made of [0-9A-Za-z.+-].
	r := &url.URL{Scheme: "https", Host: u.Host, Path: strings.TrimSuffix(u.Path, "/") + "/" + file}
	if u.RawPath != "" {
		r.RawPath = strings.TrimSuffix(u.RawPath, "/") + "/" + file
	}
	return r.String(), nil
}

// ValidateBaseURL checks a CDN or mirror base URL with
// endpoint.ValidateBaseURL: it must parse, use https, name a host, and carry
// no user info, query, fragment or dot segment. An http:// URL yields an
// error wrapping ErrInsecureURL; anything else wrong wraps
// ErrInvalidBaseURL.
func ValidateBaseURL(s string) error { return endpoint.ValidateBaseURL(s) }
