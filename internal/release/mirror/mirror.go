// Package mirror copies genuine releases from a CDN that publishes only
// tarballs and sha256sum files into a directory, signed with an
// organisation's key in the format the updater verifies.
package mirror

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/gravitational/teleport-update/internal/atomicfile"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// ErrOriginMismatch means a tarball from the origin does not match the
// .sha256 the origin publishes next to it. Nothing is signed for it.
var ErrOriginMismatch = fmt.Errorf("%w: origin tarball does not match its published SHA-256", verify.ErrVerification)

// Options says what Run copies, from where, and with which key.
type Options struct {
	// From is the origin's base URL (https), e.g. https://cdn.teleport.dev.
	From string
	// Artifacts are the tarballs to mirror, each validated.
	Artifacts []download.Artifact
	// Key signs the checksum of every mirrored tarball.
	Key *ecdsa.PrivateKey
	// Out is the mirror directory, served as-is by any static web server.
	Out string
	// Client fetches from the origin with the updater's caps and stall
	// watchdog.
	Client *download.Client
	// MaxSize caps one tarball; 0 means download.DefaultMaxArtifactSize.
	MaxSize int64
	// Now gives the time key validity is checked at; nil means time.Now.
	Now func() time.Time
	// Log receives one line per artifact; nil discards.
	Log *slog.Logger
}

// Mirrored is the outcome for one artifact.
type Result struct {
	Name    string // tarball file name
	SHA256  string // lowercase hex
	Size    int64
	Skipped bool // already mirrored and signed by Key: nothing fetched
}

// Run copies each artifact's tarball from the origin into opts.Out and
// signs it there, so hosts pinning the organisation's key can install
// genuine releases from a mirror. For each artifact, in order:
//
//   - when Out already holds the tarball with a .sha256, bundle and .sig
//     that verify against Key's public key and the tarball's bytes, it is
//     skipped (a re-run after an interruption resumes with the next one);
//   - otherwise the origin's .sha256 is fetched (capped), must be one
//     sha256sum line naming exactly the tarball, and the tarball is
//     streamed into a private partial file in Out, hashed as it arrives;
//   - a tarball whose hash differs from the origin's line is deleted and
//     the run stops with ErrOriginMismatch: nothing is signed for it;
//   - a matching tarball is synced, renamed into place, and only then are
//     its .sha256, .sha256.sigstore.json and .sha256.sig written.
//
// Run returns what it did for the artifacts it finished, and the first
// error, which names the artifact.
func Run(ctx context.Context, opts Options) ([]Result, error) {
	if opts.Key == nil || opts.Client == nil {
		return nil, errors.New("mirror: a signing key and a download client are required")
	}
	if err := download.ValidateBaseURL(opts.From); err != nil {
		return nil, fmt.Errorf("mirror: origin: %w", err)
	}
	pubPEM, err := release.PublicKeyPEM(&opts.Key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	m := mirror{opts: opts, pubPEM: pubPEM, log: opts.Log}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.opts.Now == nil {
		m.opts.Now = time.Now
	}
	var done []Result
	for _, a := range opts.Artifacts {
		r, err := m.one(ctx, a)
		if err != nil {
			return done, fmt.Errorf("mirror %s: %w", a.TarballName(), err)
		}
		done = append(done, r)
	}
	return done, nil
}

type mirror struct {
	opts   Options
	pubPEM []byte
	log    *slog.Logger
}

func (m *mirror) one(ctx context.Context, a download.Artifact) (Result, error) {
	if err := a.Validate(); err != nil {
		return Result{}, err
	}
	name := a.TarballName()
	path := filepath.Join(m.opts.Out, name)
	if v, ok := m.complete(path); ok {
		m.log.InfoContext(ctx, "Already mirrored and signed.", "file", name)
		return Result{Name: name, SHA256: v.SHA256, Size: fileSize(path), Skipped: true}, nil
	}
	want, err := m.originChecksum(ctx, a)
	if err != nil {
		return Result{}, err
	}
	res, err := m.fetch(ctx, a, path, want)
	if err != nil {
		return Result{}, err
	}
	sum, _ := hex.DecodeString(res.SHA256)
	if err := release.SignDigest(m.opts.Key, path, sum); err != nil {
		return Result{}, err
	}
	m.log.InfoContext(ctx, "Mirrored and signed.", "file", name, "bytes", res.Size, "sha256", res.SHA256)
	return Result{Name: name, SHA256: res.SHA256, Size: res.Size}, nil
}

// complete reports whether path and its three signature files are all
// present and verify against the mirror's key.
func (m *mirror) complete(path string) (verify.Verified, bool) {
	if _, err := os.Stat(path + release.SignatureSuffix); err != nil {
		return verify.Verified{}, false
	}
	v, err := release.Verify(m.pubPEM, path, m.opts.Now())
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("Mirrored files do not verify; mirroring again.", "file", filepath.Base(path), "error", err)
		}
		return verify.Verified{}, false
	}
	return v, true
}

// originChecksum fetches the origin's .sha256 and returns its hex sum after
// checking that the line names exactly the tarball.
func (m *mirror) originChecksum(ctx context.Context, a download.Artifact) (string, error) {
	u, err := a.URL(m.opts.From, a.ChecksumName())
	if err != nil {
		return "", err
	}
	body, err := m.opts.Client.Fetch(ctx, u, verify.MaxChecksumSize)
	if err != nil {
		return "", err
	}
	sum, file, err := verify.ParseChecksum(body)
	if err != nil {
		return "", fmt.Errorf("origin %s: %w", a.ChecksumName(), err)
	}
	if file != a.TarballName() {
		return "", fmt.Errorf("%w: origin %s names %q", verify.ErrVerification, a.ChecksumName(), file)
	}
	return sum, nil
}

// fetch streams the tarball into a partial file next to path and renames it
// into place only when its hash is want. On any failure the partial file is
// removed.
func (m *mirror) fetch(ctx context.Context, a download.Artifact, path, want string) (res download.Result, err error) {
	u, err := a.URL(m.opts.From, a.TarballName())
	if err != nil {
		return res, err
	}
	partial := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".partial")
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(partial)
		}
	}()
	max := m.opts.MaxSize
	if max <= 0 {
		max = download.DefaultMaxArtifactSize
	}
	if res, err = m.opts.Client.Download(ctx, u, f, max, nil); err != nil {
		return res, err
	}
	if res.SHA256 != want {
		return res, fmt.Errorf("%w: got %s, origin's %s says %s", ErrOriginMismatch, res.SHA256, a.ChecksumName(), want)
	}
	if err = errors.Join(f.Chmod(0o644), f.Sync(), f.Close()); err != nil {
		return res, err
	}
	if err = os.Rename(partial, path); err != nil {
		return res, err
	}
	return res, atomicfile.SyncDir(filepath.Dir(path))
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
