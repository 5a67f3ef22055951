// Package release is the signing side of teleport-update's release format:
// it generates an ECDSA P-256 signing key and writes, next to each artifact,
// exactly the files the updater (and install.sh) consume:
//
//	FILE.sha256                 "<64 lowercase hex>  <basename>\n"
//	FILE.sha256.sigstore.json   Sigstore bundle v0.3 over the .sha256 bytes
//	FILE.sha256.sig             base64 ASN.1 DER ECDSA signature over the same bytes
//
// The bundle has the shape cosign v3 writes with
// `cosign sign-blob --key K --bundle B --use-signing-config=false --tlog-upload=false`,
// so cosign and this package are interchangeable on both sides.
package release

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gravitational/teleport-update/internal/atomicfile"
	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// File name suffixes of the signature files written next to an artifact:
// the names the updater reads (verify's), not a copy of them.
const (
	ChecksumSuffix  = verify.ChecksumSuffix
	BundleSuffix    = verify.BundleSuffix
	SignatureSuffix = verify.SignatureSuffix
)

// Names GenerateKey writes inside its directory.
const (
	PrivateKeyFile = "release.key"
	PublicKeyFile  = "release.pub"
)

// MaxKeyFileSize caps a private key file read by LoadPrivateKey.
const MaxKeyFileSize = 16 << 10

// Errors callers can test for.
var (
	// ErrExists: GenerateKey refuses to overwrite an existing key file.
	ErrExists = errors.New("key file already exists")
	// ErrKeyFile: a private key file is unusable (format, curve, permissions).
	ErrKeyFile = errors.New("invalid private key file")
	// ErrArtifactMismatch: the artifact's SHA-256 differs from the signed checksum.
	ErrArtifactMismatch = fmt.Errorf("%w: artifact SHA-256 does not match the signed checksum", verify.ErrVerification)
)

// GenerateKey creates a new ECDSA P-256 signing key in dir (created 0700 if
// missing): dir/release.key (PKCS#8 PEM, mode 0600) and dir/release.pub (PKIX
// PEM, mode 0644). It refuses to overwrite either file (ErrExists) and leaves
// no partial key behind on failure.
func GenerateKey(dir string) (privPath, pubPath string, err error) {
	privPath = filepath.Join(dir, PrivateKeyFile)
	pubPath = filepath.Join(dir, PublicKeyFile)
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("generate key: %w: %s", ErrExists, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("generate key: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("generate key: marshal private key: %w", err)
	}
	pubPEM, err := PublicKeyPEM(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	if err := writeNew(privPath, privPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		os.Remove(privPath)
		return "", "", fmt.Errorf("generate key: %w", err)
	}
	return privPath, pubPath, nil
}

// PublicKeyPEM encodes pub as a PKIX "PUBLIC KEY" PEM block.
func PublicKeyPEM(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// writeNew creates path exclusively with mode perm and writes data.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
		return err
	}
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// LoadPrivateKey reads an ECDSA P-256 private key from a PEM file: PKCS#8
// ("PRIVATE KEY", what GenerateKey writes), SEC1 ("EC PRIVATE KEY", what
// `openssl ecparam -genkey` writes), or a cosign key ("ENCRYPTED SIGSTORE
// PRIVATE KEY", what `cosign generate-key-pair` writes) encrypted with an
// empty password. A key file readable or writable by group or others is
// refused: a signing key that may have leaked is worse than a signing run that
// stops. Errors wrap ErrKeyFile and name the problem.
func LoadPrivateKey(path string) (*ecdsa.PrivateKey, error) {
	return LoadPrivateKeyPassword(path, nil)
}

// LoadPrivateKeyPassword is LoadPrivateKey with the password for a cosign
// encrypted key (cosign reads it from COSIGN_PASSWORD). Unencrypted keys
// ignore password.
func LoadPrivateKeyPassword(path string, password []byte) (*ecdsa.PrivateKey, error) {
	fail := func(format string, args ...any) (*ecdsa.PrivateKey, error) {
		return nil, fmt.Errorf("load private key %s: %w: %s", path, ErrKeyFile, fmt.Sprintf(format, args...))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fail("not a regular file")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fail("mode %#o is accessible by group/others, want 0600 (chmod 600 %s)", perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	if len(data) > MaxKeyFileSize {
		return fail("larger than %d bytes", MaxKeyFileSize)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fail("no PEM block")
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case pemSigstoreEncrypted, pemCosignEncrypted:
		der, derr := decryptCosignKey(block.Bytes, password)
		if derr != nil {
			return fail("%v", derr)
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
	default:
		return fail("PEM block type %q, want \"PRIVATE KEY\" or \"EC PRIVATE KEY\"", block.Type)
	}
	if err != nil {
		return fail("%v", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return fail("%T keys are not supported, want ECDSA P-256", key)
	}
	if ec.Curve != elliptic.P256() {
		return fail("ECDSA curve %s is not supported, want P-256", ec.Curve.Params().Name)
	}
	return ec, nil
}

// Sign hashes file and writes FILE.sha256, FILE.sha256.sigstore.json and
// FILE.sha256.sig next to it, each atomically (atomicfile.WriteFile), so a
// reader never sees a partial file, nor a crash an empty one. The checksum
// line names the base name of file.
func Sign(key *ecdsa.PrivateKey, file string) error {
	if key == nil || key.Curve != elliptic.P256() {
		return fmt.Errorf("sign %s: %w: want an ECDSA P-256 key", file, ErrKeyFile)
	}
	sum, err := hashFile(file)
	if err != nil {
		return fmt.Errorf("sign %s: %w", file, err)
	}
	return SignDigest(key, file, sum)
}

// SignDigest is Sign for a caller that already computed the SHA-256 of
// exactly file's bytes (while writing them, say): it writes the same three
// files without reading file again.
func SignDigest(key *ecdsa.PrivateKey, file string, sum []byte) error {
	checksum := []byte(hex.EncodeToString(sum) + "  " + filepath.Base(file) + "\n")
	if _, _, err := verify.ParseChecksum(checksum); err != nil {
		return fmt.Errorf("sign %s: file name cannot be signed: %w", file, err)
	}
	bundleJSON, sig, err := SignChecksum(key, checksum)
	if err != nil {
		return fmt.Errorf("sign %s: %w", file, err)
	}
	for _, out := range []struct {
		path string
		data []byte
	}{
		{file + ChecksumSuffix, checksum},
		{file + BundleSuffix, bundleJSON},
		{file + SignatureSuffix, []byte(base64.StdEncoding.EncodeToString(sig))},
	} {
		if err := atomicfile.WriteFile(out.path, out.data, 0o644); err != nil {
			return fmt.Errorf("sign %s: %w", file, err)
		}
	}
	return nil
}

// SignChecksum signs the exact bytes of a checksum file and returns the
// Sigstore bundle JSON (cosign's shape) and the raw ASN.1 DER signature.
func SignChecksum(key *ecdsa.PrivateKey, checksum []byte) (bundleJSON, derSig []byte, err error) {
	digest := sha256.Sum256(checksum)
	derSig, err = ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, nil, fmt.Errorf("sign checksum: %w", err)
	}
	hint, err := verify.HintFor(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign checksum: %w", err)
	}
	b := &protobundle.Bundle{
		MediaType: verify.BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{
				PublicKey: &protocommon.PublicKeyIdentifier{Hint: hint},
			},
		},
		Content: &protobundle.Bundle_MessageSignature{
			MessageSignature: &protocommon.MessageSignature{
				MessageDigest: &protocommon.HashOutput{
					Algorithm: protocommon.HashAlgorithm_SHA2_256,
					Digest:    digest[:],
				},
				Signature: derSig,
			},
		},
	}
	raw, err := protojson.Marshal(b)
	if err != nil {
		return nil, nil, fmt.Errorf("sign checksum: marshal bundle: %w", err)
	}
	// protojson varies its whitespace on purpose; compact it so the same
	// signature always yields the same file.
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, nil, fmt.Errorf("sign checksum: compact bundle: %w", err)
	}
	return compact.Bytes(), derSig, nil
}

func hashFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// Verify checks a released file the way the updater does: FILE.sha256 and
// FILE.sha256.sigstore.json must verify against the public key in pubPEM
// (validity headers honoured at now), the checksum line must name FILE's
// base name, FILE.sha256.sig (if present) must verify with the same key, and
// FILE's SHA-256 must match the checksum. Verification failures wrap
// verify.ErrVerification (ErrArtifactMismatch for a wrong artifact); I/O
// errors do not.
func Verify(pubPEM []byte, file string, now time.Time) (verify.Verified, error) {
	key, err := verify.ParsePublicKeyPEM(pubPEM, "public key")
	if err != nil {
		return verify.Verified{}, fmt.Errorf("verify %s: %w", file, err)
	}
	checksum, err := readCapped(file+ChecksumSuffix, verify.MaxChecksumSize)
	if err != nil {
		return verify.Verified{}, fmt.Errorf("verify %s: %w", file, err)
	}
	bundleJSON, err := readCapped(file+BundleSuffix, verify.MaxBundleSize)
	if err != nil {
		return verify.Verified{}, fmt.Errorf("verify %s: %w", file, err)
	}
	v, err := verify.VerifyChecksumFile(verify.NewKeySet(key), checksum, bundleJSON, filepath.Base(file), now)
	if err != nil {
		return verify.Verified{}, fmt.Errorf("verify %s: %w", file, err)
	}
	if err := verifySigFile(file+SignatureSuffix, v.Key.Public, checksum); err != nil {
		return verify.Verified{}, fmt.Errorf("verify %s: %w", file, err)
	}
	sum, err := hashFile(file)
	if err != nil {
		return verify.Verified{}, fmt.Errorf("verify %s: %w", file, err)
	}
	if got := hex.EncodeToString(sum); got != v.SHA256 {
		return verify.Verified{}, fmt.Errorf("verify %s: %w: file has %s, signed checksum says %s", file, ErrArtifactMismatch, got, v.SHA256)
	}
	return v, nil
}

// MaxSignatureFileSize caps FILE.sha256.sig (base64 of a ~72-byte DER signature).
const MaxSignatureFileSize = 1 << 10

// verifySigFile checks the optional base64 DER signature file install.sh
// uses. A missing file is fine (the updater does not need it); a present one
// must verify, so a release never ships a .sig that disagrees with its bundle.
func verifySigFile(path string, pub *ecdsa.PublicKey, checksum []byte) error {
	data, err := readCapped(path, MaxSignatureFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("%w: %s is not base64: %v", verify.ErrSignature, path, err)
	}
	digest := sha256.Sum256(checksum)
	if !ecdsa.VerifyASN1(pub, digest[:], der) {
		return fmt.Errorf("%w: %s does not verify over the checksum file", verify.ErrSignature, path)
	}
	return nil
}

// readCapped reads path, failing with verify.ErrInputTooLarge past max bytes.
func readCapped(path string, max int64) ([]byte, error) {
	data, err := capread.File(path, max)
	if errors.Is(err, capread.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %w", verify.ErrInputTooLarge, err)
	}
	return data, err
}
