// Package verify checks release artifacts offline: a strict sha256sum-style
// checksum file, a Sigstore bundle (v0.3, key-based messageSignature) over the
// checksum bytes, and a set of pinned public keys selected by the bundle's hint.
//
// Everything here is pure: bytes, keys and the current time in; a verdict out.
// No network, no logging, no globals. (LoadKeySet reads key files from disk;
// it is the one function here that touches the filesystem.)
package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Names of the signed files published next to an artifact FILE: a release
// is FILE plus these three, on a CDN or in a directory.
const (
	// ChecksumSuffix names FILE.sha256, one sha256sum-format line.
	ChecksumSuffix = ".sha256"
	// BundleSuffix names the Sigstore bundle over the FILE.sha256 bytes.
	BundleSuffix = ChecksumSuffix + ".sigstore.json"
	// SignatureSuffix names the base64 DER signature over the same bytes
	// (for install.sh's openssl check).
	SignatureSuffix = ChecksumSuffix + ".sig"
)

// Size limits for the small signed files. Readers must read at most max+1
// bytes and fail when the extra byte arrives.
const (
	MaxChecksumSize = 4 << 10  // the .sha256 file
	MaxBundleSize   = 64 << 10 // the .sha256.sigstore.json bundle
)

// ErrVerification is the category of every verification failure; callers use
// errors.Is(err, ErrVerification) to tell "untrusted bytes" from I/O errors.
var ErrVerification = errors.New("verification failed")

// Specific verification failures. Each wraps ErrVerification.
var (
	// ErrUnknownKey: the bundle's hint names no pinned key.
	ErrUnknownKey = fmt.Errorf("%w: unknown signing key", ErrVerification)
	// ErrKeyNotValid: the pinned key is outside its NotBefore/NotAfter window at now.
	ErrKeyNotValid = fmt.Errorf("%w: signing key not valid at this time", ErrVerification)
	// ErrChecksumFormat: the checksum file is not exactly one well-formed line.
	ErrChecksumFormat = fmt.Errorf("%w: malformed checksum file", ErrVerification)
	// ErrFileNameMismatch: the (validly signed) checksum line names another file.
	ErrFileNameMismatch = fmt.Errorf("%w: checksum file names a different file", ErrVerification)
	// ErrBundleFormat: the bundle is not a key-based v0.3 messageSignature bundle.
	ErrBundleFormat = fmt.Errorf("%w: unsupported or malformed signature bundle", ErrVerification)
	// ErrSignature: the signature does not verify over the checksum bytes.
	ErrSignature = fmt.Errorf("%w: bad signature", ErrVerification)
	// ErrInputTooLarge: an input exceeds MaxChecksumSize or MaxBundleSize.
	ErrInputTooLarge = fmt.Errorf("%w: input too large", ErrVerification)
)

// Key is one pinned public key.
type Key struct {
	// Hint is base64(SHA-256(PKIX DER)), the value a Sigstore bundle carries in
	// verificationMaterial.publicKey.hint.
	Hint   string
	Public *ecdsa.PublicKey
	// NotBefore/NotAfter bound the key's validity; zero means unbounded.
	NotBefore, NotAfter time.Time
	// Source says where the key came from ("embedded:keys/x.pem", a file path).
	Source string
}

// ValidAt reports whether now lies inside the key's validity window
// (both bounds inclusive; a zero bound is open).
func (k Key) ValidAt(now time.Time) bool {
	if !k.NotBefore.IsZero() && now.Before(k.NotBefore) {
		return false
	}
	if !k.NotAfter.IsZero() && now.After(k.NotAfter) {
		return false
	}
	return true
}

// Verified is the outcome of a successful checksum-file verification.
type Verified struct {
	SHA256   string // 64 lowercase hex digits of the artifact
	FileName string // the file name the checksum line names
	Key      Key    // the key that signed it
}

// KeySet is an immutable set of pinned keys indexed by hint.
type KeySet struct {
	byHint map[string]Key
}

// NewKeySet returns a key set holding keys. When two keys share a hint the
// first one wins.
func NewKeySet(keys ...Key) *KeySet {
	ks := &KeySet{byHint: make(map[string]Key, len(keys))}
	for _, k := range keys {
		if _, dup := ks.byHint[k.Hint]; dup {
			continue
		}
		ks.byHint[k.Hint] = k
	}
	return ks
}

// Len reports the number of keys.
func (ks *KeySet) Len() int {
	if ks == nil {
		return 0
	}
	return len(ks.byHint)
}

// Lookup returns the key with the given hint.
func (ks *KeySet) Lookup(hint string) (Key, bool) {
	if ks == nil {
		return Key{}, false
	}
	k, ok := ks.byHint[hint]
	return k, ok
}

// Keys returns the keys in no particular order.
func (ks *KeySet) Keys() []Key {
	if ks == nil {
		return nil
	}
	out := make([]Key, 0, len(ks.byHint))
	for _, k := range ks.byHint {
		out = append(out, k)
	}
	return out
}

// VerifyChecksumFile verifies that bundle is a valid signature by a pinned key
// over checksum, that checksum is one well-formed line, and that the line
// names exactly wantName. All failures wrap ErrVerification:
//
//   - ErrInputTooLarge: checksum > MaxChecksumSize or bundle > MaxBundleSize;
//   - ErrBundleFormat: not a v0.3 key-based messageSignature bundle over SHA2_256
//     (DSSE, certificates, other media types are refused by name);
//   - ErrUnknownKey: the bundle's hint selects no pinned key (no other key is tried);
//   - ErrKeyNotValid: the selected key is outside its validity window at now;
//   - ErrSignature: the signature does not verify over the exact checksum bytes;
//   - ErrChecksumFormat: the (signed) checksum file is not one strict line;
//   - ErrFileNameMismatch: the line names a file other than wantName.
func VerifyChecksumFile(ks *KeySet, checksum, bundle []byte, wantName string, now time.Time) (Verified, error) {
	if len(checksum) > MaxChecksumSize {
		return Verified{}, fmt.Errorf("verify checksum file: %w: checksum file is larger than %d bytes", ErrInputTooLarge, MaxChecksumSize)
	}
	key, err := VerifyBundle(ks, checksum, bundle, now)
	if err != nil {
		return Verified{}, fmt.Errorf("verify checksum file: %w", err)
	}
	sum, name, err := ParseChecksum(checksum)
	if err != nil {
		return Verified{}, fmt.Errorf("verify checksum file: %w", err)
	}
	if name != wantName {
		return Verified{}, fmt.Errorf("verify checksum file: %w: signed checksum is for %q, want %q", ErrFileNameMismatch, name, wantName)
	}
	return Verified{SHA256: sum, FileName: name, Key: key}, nil
}

// VerifyBundle verifies that bundle carries a valid signature over message by
// the pinned key its hint selects, valid at now. It returns that key.
// Failures wrap ErrInputTooLarge, ErrBundleFormat, ErrUnknownKey, ErrKeyNotValid
// or ErrSignature (all ErrVerification).
func VerifyBundle(ks *KeySet, message, bundle []byte, now time.Time) (Key, error) {
	b, hint, err := LoadBundle(bundle)
	if err != nil {
		return Key{}, err
	}
	key, ok := ks.Lookup(hint)
	if !ok {
		return Key{}, fmt.Errorf("%w: bundle hint %q matches none of %d pinned keys", ErrUnknownKey, hint, ks.Len())
	}
	if !key.ValidAt(now) {
		return Key{}, fmt.Errorf("%w: key %s (%s) is valid %s, now is %s", ErrKeyNotValid,
			key.Hint, key.Source, validityString(key), now.UTC().Format(time.RFC3339))
	}
	sv, err := signature.LoadECDSAVerifier(key.Public, crypto.SHA256)
	if err != nil {
		return Key{}, fmt.Errorf("%w: load verifier for key %s: %v", ErrSignature, key.Source, err)
	}
	// Only the selected key is ever offered to sigstore-go: no other key is tried.
	// Validity was enforced above; sigstore-go does not without observer timestamps.
	expiring := root.NewExpiringKey(sv, time.Time{}, time.Time{})
	material := root.NewTrustedPublicKeyMaterial(func(id string) (root.TimeConstrainedVerifier, error) {
		if id != hint {
			return nil, fmt.Errorf("key %q is not the selected key", id)
		}
		return expiring, nil
	})
	v, err := sgverify.NewVerifier(material, sgverify.WithNoObserverTimestamps())
	if err != nil {
		return Key{}, fmt.Errorf("%w: create verifier: %v", ErrSignature, err)
	}
	policy := sgverify.NewPolicy(sgverify.WithArtifact(bytes.NewReader(message)), sgverify.WithKey())
	if _, err := v.Verify(b, policy); err != nil {
		return Key{}, fmt.Errorf("%w: key %s (%s): %v", ErrSignature, key.Hint, key.Source, err)
	}
	return key, nil
}

func validityString(k Key) string {
	from, to := "-inf", "+inf"
	if !k.NotBefore.IsZero() {
		from = k.NotBefore.UTC().Format(time.RFC3339)
	}
	if !k.NotAfter.IsZero() {
		to = k.NotAfter.UTC().Format(time.RFC3339)
	}
	return "from " + from + " to " + to
}
