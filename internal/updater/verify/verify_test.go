package verify_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/protobuf-specs/gen/pb-go/dsse"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

const tarball = "teleport-v16.4.6-linux-amd64-bin.tar.gz"

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func checksumLine(content, name string) []byte {
	sum := sha256.Sum256([]byte(content))
	return []byte(hex.EncodeToString(sum[:]) + "  " + name + "\n")
}

func TestVerifyChecksumFile(t *testing.T) {
	t.Parallel()
	pinned := newTestKey(t)
	other := newTestKey(t) // never pinned
	checksum := checksumLine("release tarball bytes", tarball)
	genuine := pinned.sign(t, checksum)

	flipped := bytes.Clone(checksum)
	flipped[3] ^= 0x01

	// A wrong key that claims the pinned key's hint.
	forged := mutateBundle(t, other.sign(t, checksum), func(b *protobundle.Bundle) {
		b.GetVerificationMaterial().GetPublicKey().Hint = pinned.key.Hint
	})
	// A genuine signature over another version's checksum file.
	otherName := checksumLine("release tarball bytes", "teleport-v16.4.5-linux-amd64-bin.tar.gz")
	otherArch := checksumLine("release tarball bytes", "teleport-v16.4.6-linux-arm64-bin.tar.gz")

	expired, notYet := pinned.key, pinned.key
	expired.NotAfter = now.Add(-time.Hour)
	notYet.NotBefore = now.Add(time.Hour)
	window := pinned.key
	window.NotBefore, window.NotAfter = now.Add(-time.Hour), now.Add(time.Hour)

	cert := selfSignedCert(t, pinned.priv)
	dsseBundle := mutateBundle(t, genuine, func(b *protobundle.Bundle) {
		b.Content = &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &dsse.Envelope{
			Payload:     checksum,
			PayloadType: "application/vnd.in-toto+json",
			Signatures:  []*dsse.Signature{{Sig: []byte("sig"), Keyid: ""}},
		}}
	})
	certBundle := mutateBundle(t, genuine, func(b *protobundle.Bundle) {
		b.VerificationMaterial.Content = &protobundle.VerificationMaterial_Certificate{
			Certificate: &protocommon.X509Certificate{RawBytes: cert},
		}
	})
	chainBundle := mutateBundle(t, genuine, func(b *protobundle.Bundle) {
		b.VerificationMaterial.Content = &protobundle.VerificationMaterial_X509CertificateChain{
			X509CertificateChain: &protocommon.X509CertificateChain{Certificates: []*protocommon.X509Certificate{{RawBytes: cert}}},
		}
	})
	oldMedia := mutateBundle(t, genuine, func(b *protobundle.Bundle) {
		b.MediaType = "application/vnd.dev.sigstore.bundle+json;version=0.2"
	})
	sha384 := mutateBundle(t, genuine, func(b *protobundle.Bundle) {
		b.GetMessageSignature().MessageDigest.Algorithm = protocommon.HashAlgorithm_SHA2_384
	})
	wrongDigest := mutateBundle(t, genuine, func(b *protobundle.Bundle) {
		b.GetMessageSignature().MessageDigest.Digest[0] ^= 0xff
	})
	noHint := mutateBundle(t, genuine, func(b *protobundle.Bundle) {
		b.GetVerificationMaterial().GetPublicKey().Hint = ""
	})
	// Padding with spaces keeps the JSON valid: only the size is wrong.
	oversized := append(bytes.Clone(genuine), bytes.Repeat([]byte(" "), verify.MaxBundleSize)...)
	badLine := []byte(strings.ToUpper(string(checksum[:64])) + string(checksum[64:]))

	tests := []struct {
		name     string
		keys     []verify.Key
		checksum []byte
		bundle   []byte
		want     string
		wantErr  error
		wantText string // must appear in the error: the refusal is named
	}{
		{name: "genuine", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: genuine, want: tarball},
		{name: "genuine among several keys", keys: []verify.Key{other.key, pinned.key}, checksum: checksum, bundle: genuine, want: tarball},
		{name: "key inside its validity window", keys: []verify.Key{window}, checksum: checksum, bundle: genuine, want: tarball},
		{name: "flipped byte in checksum file", keys: []verify.Key{pinned.key}, checksum: flipped, bundle: genuine, wantErr: verify.ErrSignature},
		{name: "unpinned key", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: other.sign(t, checksum), wantErr: verify.ErrUnknownKey, wantText: "hint"},
		{name: "wrong key with pinned hint", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: forged, wantErr: verify.ErrSignature},
		{name: "other version under this name", keys: []verify.Key{pinned.key}, checksum: otherName, bundle: pinned.sign(t, otherName), wantErr: verify.ErrFileNameMismatch, wantText: "v16.4.5"},
		{name: "other arch under this name", keys: []verify.Key{pinned.key}, checksum: otherArch, bundle: pinned.sign(t, otherArch), wantErr: verify.ErrFileNameMismatch, wantText: "arm64"},
		{name: "expired key", keys: []verify.Key{expired}, checksum: checksum, bundle: genuine, wantErr: verify.ErrKeyNotValid},
		{name: "not yet valid key", keys: []verify.Key{notYet}, checksum: checksum, bundle: genuine, wantErr: verify.ErrKeyNotValid},
		{name: "DSSE bundle", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: dsseBundle, wantErr: verify.ErrBundleFormat, wantText: "DSSE"},
		{name: "certificate bundle", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: certBundle, wantErr: verify.ErrBundleFormat, wantText: "certificate"},
		{name: "certificate chain bundle", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: chainBundle, wantErr: verify.ErrBundleFormat, wantText: "x509CertificateChain"},
		{name: "wrong media type", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: oldMedia, wantErr: verify.ErrBundleFormat, wantText: "media type"},
		{name: "SHA-384 digest", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: sha384, wantErr: verify.ErrBundleFormat, wantText: "SHA2_384"},
		{name: "digest does not match checksum", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: wrongDigest, wantErr: verify.ErrSignature},
		{name: "empty hint", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: noHint, wantErr: verify.ErrBundleFormat, wantText: "hint"},
		{name: "not JSON", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: []byte("not json"), wantErr: verify.ErrBundleFormat, wantText: "JSON"},
		{name: "oversized bundle", keys: []verify.Key{pinned.key}, checksum: checksum, bundle: oversized, wantErr: verify.ErrInputTooLarge, wantText: "bundle"},
		{name: "oversized checksum", keys: []verify.Key{pinned.key}, checksum: bytes.Repeat([]byte("a"), verify.MaxChecksumSize+1), bundle: genuine, wantErr: verify.ErrInputTooLarge, wantText: "checksum"},
		{name: "signed but malformed checksum", keys: []verify.Key{pinned.key}, checksum: badLine, bundle: pinned.sign(t, badLine), wantErr: verify.ErrChecksumFormat, wantText: "uppercase"},
		{name: "empty key set", keys: nil, checksum: checksum, bundle: genuine, wantErr: verify.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := verify.VerifyChecksumFile(verify.NewKeySet(tt.keys...), tt.checksum, tt.bundle, tarball, now)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !errors.Is(err, verify.ErrVerification) {
					t.Errorf("err = %v does not wrap ErrVerification", err)
				}
				if !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("err = %q, want it to name %q", err, tt.wantText)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyChecksumFile: %v", err)
			}
			sum := sha256.Sum256([]byte("release tarball bytes"))
			if got.FileName != tt.want || got.SHA256 != hex.EncodeToString(sum[:]) || got.Key.Hint != pinned.key.Hint {
				t.Errorf("got %+v, want file %s, sum %x, key %s", got, tt.want, sum, pinned.key.Hint)
			}
		})
	}
}

// TestUnknownHintTriesNoOtherKey pins the key-selection rule: the bundle's
// hint picks the one key to try, so an unknown hint is refused even when a
// pinned key would verify the signature.
func TestUnknownHintTriesNoOtherKey(t *testing.T) {
	t.Parallel()
	k := newTestKey(t)
	checksum := checksumLine("x", tarball)
	relabelled := mutateBundle(t, k.sign(t, checksum), func(b *protobundle.Bundle) {
		b.GetVerificationMaterial().GetPublicKey().Hint = "c29tZSBvdGhlciBrZXk="
	})
	_, err := verify.VerifyChecksumFile(verify.NewKeySet(k.key), checksum, relabelled, tarball, now)
	if !errors.Is(err, verify.ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
}

func TestKeyValidityBounds(t *testing.T) {
	t.Parallel()
	k := verify.Key{NotBefore: now, NotAfter: now.Add(time.Hour)}
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{
		{now.Add(-time.Nanosecond), false},
		{now, true},
		{now.Add(time.Hour), true},
		{now.Add(time.Hour + time.Nanosecond), false},
	} {
		if got := k.ValidAt(tt.at); got != tt.want {
			t.Errorf("ValidAt(%s) = %v, want %v", tt.at, got, tt.want)
		}
	}
	if !(verify.Key{}).ValidAt(now) {
		t.Error("unbounded key not valid")
	}
}

func TestNewKeySetFirstWins(t *testing.T) {
	t.Parallel()
	k := newTestKey(t)
	a, b := k.key, k.key
	a.Source, b.Source = "a", "b"
	ks := verify.NewKeySet(a, b)
	if ks.Len() != 1 {
		t.Fatalf("Len = %d, want 1", ks.Len())
	}
	if got, _ := ks.Lookup(k.key.Hint); got.Source != "a" {
		t.Errorf("Lookup source = %q, want a", got.Source)
	}
}

func FuzzVerifyBundle(f *testing.F) {
	k := newTestKey(f)
	checksum := checksumLine("fuzz", tarball)
	genuine := k.sign(f, checksum)
	f.Add(genuine)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"dsseEnvelope":{}}`))
	if cosign, err := os.ReadFile("testdata/cosign/" + cosignArtifact + ".sha256.sigstore.json"); err == nil {
		f.Add(cosign) // real cosign output, by an unpinned key here
	}
	f.Add(mutateBundle(f, genuine, func(b *protobundle.Bundle) {
		b.GetMessageSignature().Signature[10] ^= 1
	}))
	ks := verify.NewKeySet(k.key)
	f.Fuzz(func(t *testing.T, bundle []byte) {
		defer fuzzwatch.Start()()
		got, err := verify.VerifyChecksumFile(ks, checksum, bundle, tarball, now)
		if err != nil {
			if !errors.Is(err, verify.ErrVerification) {
				t.Fatalf("error does not wrap ErrVerification: %v", err)
			}
			return
		}
		if got.FileName != tarball || got.Key.Hint != k.key.Hint {
			t.Fatalf("accepted with unexpected result %+v", got)
		}
		// Anything accepted must load as a bundle naming the pinned key.
		if _, hint, err := verify.LoadBundle(bundle); err != nil || hint != k.key.Hint {
			t.Fatalf("accepted bundle does not load: hint %q, err %v", hint, err)
		}
	})
}
