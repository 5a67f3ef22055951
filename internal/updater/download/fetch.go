package download

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// DefaultMaxArtifactSize caps a release tarball when the caller sets no cap.
const DefaultMaxArtifactSize = 1 << 30

// UnverifiedSuffix marks a tarball still being downloaded or checked in the
// staging directory. A file with this suffix is never trusted; one left by a
// killed run is garbage for the next run to remove.
const UnverifiedSuffix = ".unverified"

// ErrChecksumMismatch means the downloaded tarball's SHA-256 differs from
// the signed checksum. It wraps verify.ErrVerification.
var ErrChecksumMismatch = fmt.Errorf("%w: tarball SHA-256 does not match the signed checksum", verify.ErrVerification)

// Fetched is a tarball whose signature, file name and SHA-256 all checked out.
type Fetched struct {
	Path   string // the verified tarball, stagingDir/<TarballName>
	SHA256 string // lowercase hex, as signed
	Size   int64
}

// NewArtifact parses version and builds a validated Artifact. It is the
// way to turn a proxy's version string into something a URL can be built
// from: an invalid version fails here, before any request.
func NewArtifact(product, version, goos, goarch string) (Artifact, error) {
	v, err := ParseVersion(version)
	if err != nil {
		return Artifact{}, err
	}
	a := Artifact{Product: product, Version: v, OS: goos, Arch: goarch}
	if err := a.Validate(); err != nil {
		return Artifact{}, err
	}
	return a, nil
}

// FetchVerified fetches artifact a from base and proves it authentic, in
// this order, so no byte of the tarball is fetched before its signature is
// known good:
//
//  1. fetch the .sha256 file (cap verify.MaxChecksumSize) and its Sigstore
//     bundle (cap verify.MaxBundleSize);
//  2. verify the bundle over the checksum bytes against ks, and that the
//     checksum line names exactly a.TarballName();
//  3. ask the tarball's size (HEAD) and refuse it when it is over maxSize
//     or does not fit in stagingDir with the reserve left free;
//  4. stream the tarball into stagingDir/<name>.unverified (created with
//     O_EXCL, mode 0600) through SHA-256, with cap maxSize (0 means
//     DefaultMaxArtifactSize), and compare with the signed checksum;
//  5. rename it to stagingDir/<name>.
//
// Steps 1 to 3 are CheckSigned, step 4 without the file is StreamSigned.
// stagingDir must be on the install filesystem. On every failure nothing
// of this call is left in stagingDir.
//
// Outcomes: the verified tarball; ErrInvalidArtifact or ErrInvalidVersion
// for a bad artifact and ErrInsecureURL or ErrInvalidBaseURL for a bad
// base, both before any request; verify.ErrNoKeys for an empty key set;
// an error wrapping verify.ErrVerification for an untrusted signature, a
// checksum naming another file, or a tarball whose SHA-256 differs
// (ErrChecksumMismatch); diskspace.ErrNoSpace when the tarball does not
// fit, naming stagingDir and the needed and free bytes; otherwise the
// transport errors of Fetch and Download (*HTTPStatusError, ErrTooLarge,
// ErrStalled, ErrTooSlow, ErrRedirectRefused, the context's error).
func (c *Client) FetchVerified(ctx context.Context, base string, a Artifact, ks *verify.KeySet,
	stagingDir string, maxSize int64, now time.Time, progress func(done, total int64)) (*Fetched, error) {
	s, err := c.CheckSigned(ctx, base, a, ks, stagingDir, maxSize, now)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	tmp := filepath.Join(stagingDir, s.Name+UnverifiedSuffix)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create staging file for %s: %w", s.Name, err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
			os.Remove(tmp)
		}
	}()
	res, err := c.Download(ctx, s.URL, f, s.MaxSize, progress)
	if err == nil {
		err = s.compare(res)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", s.Name, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close staging file %s: %w", tmp, err)
	}
	final := filepath.Join(stagingDir, s.Name)
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("move verified %s into place: %w", s.Name, err)
	}
	keep = true
	c.logger.InfoContext(ctx, "Download complete.", "file", s.Name, "bytes", res.Size, "resumed", res.Resumed, "duration", time.Since(start))
	return &Fetched{Path: final, SHA256: res.SHA256, Size: res.Size}, nil
}

// Signed is a release tarball whose signed checksum checked out: where to
// fetch it and the SHA-256 its bytes must have.
type Signed struct {
	Name    string // the tarball's file name
	URL     string
	SHA256  string // lowercase hex, as signed
	MaxSize int64  // the cap on its size
}

// CheckSigned runs steps 1 to 3 of FetchVerified: it fetches and verifies
// the signed checksum of artifact a and checks the tarball's announced
// size against maxSize and the room in stagingDir. No byte of the tarball
// is requested. Its outcomes are FetchVerified's, but for the tarball's.
func (c *Client) CheckSigned(ctx context.Context, base string, a Artifact, ks *verify.KeySet,
	stagingDir string, maxSize int64, now time.Time) (*Signed, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("fetch release: %w", err)
	}
	name := a.TarballName()
	if err := ValidateBaseURL(base); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	if ks == nil || ks.Len() == 0 {
		return nil, fmt.Errorf("fetch %s: %w", name, verify.ErrNoKeys)
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxArtifactSize
	}
	var urls [3]string
	for i, n := range []string{a.ChecksumName(), a.BundleName(), name} {
		u, err := a.URL(base, n)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", name, err)
		}
		urls[i] = u
	}
	c.logger.InfoContext(ctx, "Fetching release.", "file", name, "base_url", base)
	sum, err := c.Fetch(ctx, urls[0], verify.MaxChecksumSize)
	if err != nil {
		return nil, fmt.Errorf("fetch checksum of %s: %w", name, err)
	}
	bundle, err := c.Fetch(ctx, urls[1], verify.MaxBundleSize)
	if err != nil {
		return nil, fmt.Errorf("fetch signature bundle of %s: %w", name, err)
	}
	verified, err := verify.VerifyChecksumFile(ks, sum, bundle, name, now)
	if err != nil {
		return nil, fmt.Errorf("verify checksum file of %s: %w", name, err)
	}
	c.logger.InfoContext(ctx, "Checksum signature verified.", "file", name, "key", verified.Key.Source, "sha256", verified.SHA256)
	if err := c.checkRoom(ctx, urls[2], stagingDir, maxSize); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	return &Signed{Name: name, URL: urls[2], SHA256: verified.SHA256, MaxSize: maxSize}, nil
}

// StreamSigned streams the tarball of s into w (see Stream) through
// SHA-256 and compares the hash with the signed one once the last byte
// was written: w gets unverified bytes and must keep what it makes of them
// private until StreamSigned returns nil. spaceDir is the staging
// directory on the install filesystem.
//
// Outcomes: the transfer's Result; an error wrapping ErrChecksumMismatch
// when all bytes arrived but their SHA-256 is not the signed one; the
// errors of Stream, including w's first failed write.
func (c *Client) StreamSigned(ctx context.Context, s *Signed, w io.Writer, spaceDir string, progress func(done, total int64)) (Result, error) {
	res, err := c.Stream(ctx, s.URL, w, spaceDir, s.MaxSize, progress)
	if err == nil {
		err = s.compare(res)
	}
	if err != nil {
		return res, fmt.Errorf("fetch %s: %w", s.Name, err)
	}
	return res, nil
}

// compare checks a finished transfer's hash against the signed one.
func (s *Signed) compare(res Result) error {
	if res.SHA256 != s.SHA256 {
		return fmt.Errorf("%w: got %s, signed %s", ErrChecksumMismatch, res.SHA256, s.SHA256)
	}
	return nil
}

// checkRoom refuses the tarball at url before any byte of it is requested
// when its size, as a HEAD request announces it, is over maxSize or does
// not fit in dir. A server that cannot answer HEAD, or does not say the
// size, is not an error here: Download checks the GET answer's
// Content-Length the same way before reading its body.
func (c *Client) checkRoom(ctx context.Context, url, dir string, maxSize int64) error {
	size, err := c.announcedSize(ctx, url)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		c.logger.DebugContext(ctx, "Could not learn the tarball's size in advance.", "error", err)
		return nil
	case size > maxSize:
		return fmt.Errorf("%w: announced size %d exceeds %d", ErrTooLarge, size, maxSize)
	case size < 0:
		return nil
	}
	return c.checkSpace(dir, size)
}
