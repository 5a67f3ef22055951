package download

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// newCDN starts the fixture CDN for one test. Byte ranges are off unless
// a test turns them on, so a cut transfer never resumes by accident.
func newCDN(t *testing.T) *fixture.CDN {
	t.Helper()
	c := fixture.NewCDN()
	c.SetRanges(false)
	t.Cleanup(c.Close)
	return c
}

// get returns the file the CDN serves as name, failing the test if none.
func get(t *testing.T, c *fixture.CDN, name string) []byte {
	t.Helper()
	data := c.Get(name)
	if data == nil {
		t.Fatalf("cdn has no %s", name)
	}
	return data
}

// publish signs tarball as artifact a's release with key and puts the
// tarball and its three signed files on the CDN under a's names.
func publish(t *testing.T, c *fixture.CDN, key *ecdsa.PrivateKey, a Artifact, tarball []byte) {
	t.Helper()
	for name, data := range signRelease(t, key, a.TarballName(), tarball) {
		c.Put(name, data)
	}
}

// signRelease runs release.Sign over tarball saved as name and returns the
// four files by name.
func signRelease(t *testing.T, key *ecdsa.PrivateKey, name string, tarball []byte) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, tarball, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := release.Sign(key, path); err != nil {
		t.Fatalf("release.Sign: %v", err)
	}
	out := map[string][]byte{}
	for _, suffix := range append([]string{""}, fixture.SignedSuffixes...) {
		data, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		out[name+suffix] = data
	}
	return out
}

// makeTarball builds a real release tarball: bin/teleport printing version,
// plus padding so downloads span many reads.
func makeTarball(t testing.TB, version string, padding int) []byte {
	t.Helper()
	data, err := fixture.Tarball(map[string][]byte{
		"bin/teleport": []byte("#!/bin/sh\necho 'Teleport v" + version + " git:abc go1.26'\n"),
		"bin/padding":  randomBytes(t, padding), // random: gzip cannot shrink it
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// newKey generates a release signing key and returns it with its pinned
// public key.
func newKey(t *testing.T) (*ecdsa.PrivateKey, verify.Key) {
	t.Helper()
	privPath, pubPath, err := release.GenerateKey(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatalf("release.GenerateKey: %v", err)
	}
	priv, err := release.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := verify.ParsePublicKeyPEM(pem, pubPath)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// assertEmpty fails unless dir has no entries.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("staging dir holds %s after a failure", e.Name())
	}
}

func TestFetchVerified(t *testing.T) {
	t.Parallel()
	key, pub := newKey(t)
	otherKey, _ := newKey(t)
	pinned := verify.NewKeySet(pub)
	const version = "16.4.6"
	genuine := makeTarball(t, version, 512<<10)
	older := makeTarball(t, "16.4.5", 1<<10)
	now := time.Now()

	tests := []struct {
		name string
		// setup prepares the CDN (already holding the genuine release) and
		// may change the artifact, base URL or options.
		setup   func(t *testing.T, c *fixture.CDN, a *Artifact, base *string, opts *Options, max *int64)
		wantErr []error
		// wantNoRequest asserts the CDN saw no request at all.
		wantNoRequest bool
		// wantTarballHits, if set, is how often the tarball was requested.
		wantTarballHits int
	}{
		{name: "genuine release", wantTarballHits: 1},
		{
			name: "server refuses HEAD",
			setup: func(t *testing.T, c *fixture.CDN, _ *Artifact, _ *string, _ *Options, _ *int64) {
				c.RefuseHEAD()
			},
			wantTarballHits: 1,
		},
		{
			name: "one flipped byte in the tarball",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				b := get(t, c, a.TarballName())
				b[len(b)/2] ^= 0x01
				c.Put(a.TarballName(), b)
			},
			wantErr:         []error{ErrChecksumMismatch, verify.ErrVerification},
			wantTarballHits: 1,
		},
		{
			name: "one flipped byte in the checksum file",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				b := get(t, c, a.ChecksumName())
				b[3] ^= 0x01 // the line stays well-formed or not; the signature breaks either way
				c.Put(a.ChecksumName(), b)
			},
			wantErr:         []error{verify.ErrVerification},
			wantTarballHits: -1,
		},
		{
			name: "signature by an unpinned key",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				publish(t, c, otherKey, *a, genuine)
			},
			wantErr:         []error{verify.ErrUnknownKey, verify.ErrVerification},
			wantTarballHits: -1,
		},
		{
			name: "another version's signed release under this name",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				old := *a
				old.Version = mustVersion(t, "16.4.5")
				files := signRelease(t, key, old.TarballName(), older)
				c.Put(a.TarballName(), files[old.TarballName()])
				c.Put(a.ChecksumName(), files[old.ChecksumName()])
				c.Put(a.BundleName(), files[old.BundleName()])
			},
			wantErr:         []error{verify.ErrFileNameMismatch, verify.ErrVerification},
			wantTarballHits: -1,
		},
		{
			name: "another arch's signed release under this name",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				arm := *a
				arm.Arch = "arm64"
				files := signRelease(t, key, arm.TarballName(), genuine)
				c.Put(a.ChecksumName(), files[arm.ChecksumName()])
				c.Put(a.BundleName(), files[arm.BundleName()])
			},
			wantErr:         []error{verify.ErrFileNameMismatch, verify.ErrVerification},
			wantTarballHits: -1,
		},
		{
			name: "truncated download without range support",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				c.CutOnce(a.TarballName(), 100<<10)
			},
			wantErr:         []error{io.ErrUnexpectedEOF},
			wantTarballHits: 1,
		},
		{
			name: "truncated download with range support resumes",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				c.SetRanges(true)
				c.CutOnce(a.TarballName(), 100<<10)
			},
			wantTarballHits: 2,
		},
		{
			name: "endless tarball body",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, max *int64) {
				c.Handle(a.TarballName(), endless(true))
				*max = 1 << 20
			},
			wantErr:         []error{ErrTooLarge},
			wantTarballHits: 1,
		},
		{
			name: "oversized checksum file",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				c.Handle(a.ChecksumName(), endless(true))
			},
			wantErr:         []error{ErrTooLarge},
			wantTarballHits: -1,
		},
		{
			name: "one byte per tick trickle",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, opts *Options, _ *int64) {
				c.Handle(a.TarballName(), trickle(20*time.Millisecond, 200))
				opts.MinRate, opts.RateWindow = 1024, 300*time.Millisecond
			},
			wantErr:         []error{ErrTooSlow},
			wantTarballHits: 1,
		},
		{
			name: "tarball stalls",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, opts *Options, _ *int64) {
				c.Handle(a.TarballName(), hang(true))
				opts.StallTimeout = 300 * time.Millisecond
			},
			wantErr:         []error{ErrStalled},
			wantTarballHits: 1,
		},
		{
			name: "tarball 404",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				c.Handle(a.TarballName(), http.NotFoundHandler())
			},
			wantErr:         []error{&HTTPStatusError{Code: 404}},
			wantTarballHits: 1,
		},
		{
			name: "checksum 500",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				c.Handle(a.ChecksumName(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 500) }))
			},
			wantErr:         []error{&HTTPStatusError{Code: 500}},
			wantTarballHits: -1,
		},
		{
			name: "tarball redirected to another host",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				other := newCDN(t)
				other.Put(a.TarballName(), get(t, c, a.TarballName()))
				c.Handle(a.TarballName(), http.RedirectHandler(other.URL()+"/"+a.TarballName(), http.StatusFound))
			},
			wantErr:         []error{ErrRedirectRefused},
			wantTarballHits: 1,
		},
		{
			name: "tarball redirected to http",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					t.Errorf("plain-http server got a request for %s", r.URL.Path)
				}))
				t.Cleanup(plain.Close)
				c.Handle(a.TarballName(), http.RedirectHandler(plain.URL+"/"+a.TarballName(), http.StatusMovedPermanently))
			},
			wantErr:         []error{ErrRedirectRefused, ErrInsecureURL},
			wantTarballHits: 1,
		},
		{
			name: "http base URL",
			setup: func(t *testing.T, c *fixture.CDN, _ *Artifact, base *string, _ *Options, _ *int64) {
				*base = "http://" + c.Server.Listener.Addr().String()
			},
			wantErr:       []error{ErrInsecureURL},
			wantNoRequest: true,
		},
		{
			name: "artifact without a version",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				a.Version = nil
			},
			wantErr:       []error{ErrInvalidArtifact},
			wantNoRequest: true,
		},
		{
			name: "artifact with a path in its arch",
			setup: func(t *testing.T, c *fixture.CDN, a *Artifact, _ *string, _ *Options, _ *int64) {
				a.Arch = "amd64/../../x"
			},
			wantErr:       []error{ErrInvalidArtifact},
			wantNoRequest: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCDN(t)
			a, err := NewArtifact(ProductTeleport, version, "linux", "amd64")
			if err != nil {
				t.Fatal(err)
			}
			publish(t, c, key, a, genuine)
			base := c.URL()
			opts := Options{HTTPClient: c.Server.Client()}
			var max int64
			if tt.setup != nil {
				tt.setup(t, c, &a, &base, &opts, &max)
			}
			staging := t.TempDir()
			var progressed int64
			got, err := New(opts).FetchVerified(t.Context(), base, a, pinned, staging, max, now, func(done, total int64) { progressed = done })

			if tt.wantNoRequest && c.Requests() != 0 {
				t.Errorf("CDN got %d requests, want none", c.Requests())
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("FetchVerified: %v", err)
				}
				want := filepath.Join(staging, a.TarballName())
				if got.Path != want || got.SHA256 != sha256Hex(genuine) || got.Size != int64(len(genuine)) {
					t.Errorf("FetchVerified = %+v, want path %s sha %s size %d", got, want, sha256Hex(genuine), len(genuine))
				}
				data, err := os.ReadFile(got.Path)
				if err != nil || !bytes.Equal(data, genuine) {
					t.Errorf("verified file differs from the genuine tarball (%v)", err)
				}
				if fi, err := os.Stat(got.Path); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("verified file mode = %v, %v; want 0600", fi.Mode(), err)
				}
				entries, _ := os.ReadDir(staging)
				if len(entries) != 1 {
					t.Errorf("staging holds %d entries, want only the tarball", len(entries))
				}
				if progressed != int64(len(genuine)) {
					t.Errorf("progress ended at %d, want %d", progressed, len(genuine))
				}
			} else {
				if err == nil {
					t.Fatalf("FetchVerified succeeded, want %v", tt.wantErr)
				}
				for _, want := range tt.wantErr {
					var status *HTTPStatusError
					if errors.As(want, &status) {
						var gotStatus *HTTPStatusError
						if !errors.As(err, &gotStatus) || gotStatus.Code != status.Code {
							t.Errorf("error = %v, want HTTP %d", err, status.Code)
						}
					} else if !errors.Is(err, want) {
						t.Errorf("error = %v, want %v", err, want)
					}
				}
				if got != nil {
					t.Errorf("FetchVerified returned %+v with an error", got)
				}
				assertEmpty(t, staging)
			}
			hits := c.Hits(a.TarballName())
			switch {
			case tt.wantTarballHits > 0 && hits != tt.wantTarballHits:
				t.Errorf("tarball requested %d times, want %d", hits, tt.wantTarballHits)
			case tt.wantTarballHits < 0 && hits != 0:
				t.Errorf("tarball requested %d times before verification passed, want 0", hits)
			}
		})
	}
}

func TestFetchVerifiedLeftoverStagingFile(t *testing.T) {
	t.Parallel()
	key, pub := newKey(t)
	c := newCDN(t)
	a, err := NewArtifact(ProductTeleport, "16.4.6", "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, c, key, a, makeTarball(t, "16.4.6", 1<<10))
	staging := t.TempDir()
	leftover := filepath.Join(staging, a.TarballName()+UnverifiedSuffix)
	if err := os.WriteFile(leftover, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{HTTPClient: c.Server.Client()}).FetchVerified(t.Context(), c.URL(), a, verify.NewKeySet(pub), staging, 0, time.Now(), nil)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("FetchVerified error = %v, want fs.ErrExist", err)
	}
	if data, _ := os.ReadFile(leftover); string(data) != "someone else's" {
		t.Errorf("a staging file this call did not create was changed")
	}
}

func TestFetchVerifiedNoKeys(t *testing.T) {
	t.Parallel()
	c := newCDN(t)
	a, err := NewArtifact(ProductTeleport, "16.4.6", "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{HTTPClient: c.Server.Client()}).FetchVerified(t.Context(), c.URL(), a, verify.NewKeySet(), t.TempDir(), 0, time.Now(), nil)
	if !errors.Is(err, verify.ErrNoKeys) {
		t.Fatalf("FetchVerified error = %v, want verify.ErrNoKeys", err)
	}
	if c.Requests() != 0 {
		t.Errorf("CDN got %d requests, want none", c.Requests())
	}
}

func TestNewArtifact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version, os, arch string
		wantErr           error
	}{
		{"16.4.6", "linux", "amd64", nil},
		{"v16.4.6", "linux", "amd64", ErrInvalidVersion},
		{"16.4.6/../../x", "linux", "amd64", ErrInvalidVersion},
		{"16.4.6?", "linux", "amd64", ErrInvalidVersion},
		{"16.4.6", "linux/x", "amd64", ErrInvalidArtifact},
		{"16.4.6", "linux", "", ErrInvalidArtifact},
	}
	for _, tt := range tests {
		_, err := NewArtifact(ProductTeleport, tt.version, tt.os, tt.arch)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("NewArtifact(%q, %q, %q) = %v, want %v", tt.version, tt.os, tt.arch, err, tt.wantErr)
		}
	}
}
