package verify_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// The fixture in testdata/cosign was made once with the real cosign v3.1.2 CLI
// (see testdata/cosign/regen.sh); these tests prove the updater accepts what
// cosign writes.
const cosignArtifact = "teleport-v16.4.6-linux-amd64-bin.tar.gz"

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "cosign", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCosignBundleVerifies(t *testing.T) {
	t.Parallel()
	pub, err := verify.ParsePublicKeyPEM(readFixture(t, "cosign.pub"), "testdata/cosign/cosign.pub")
	if err != nil {
		t.Fatal(err)
	}
	checksum := readFixture(t, cosignArtifact+".sha256")
	bundle := readFixture(t, cosignArtifact+".sha256.sigstore.json")
	artifact := readFixture(t, cosignArtifact)

	// Hint scheme: cosign's hint is our HintFor of the same key.
	if _, hint, err := verify.LoadBundle(bundle); err != nil || hint != pub.Hint {
		t.Fatalf("cosign bundle hint = %q (err %v), HintFor(cosign.pub) = %q", hint, err, pub.Hint)
	}

	got, err := verify.VerifyChecksumFile(verify.NewKeySet(newTestKey(t).key, pub), checksum, bundle, cosignArtifact, now)
	if err != nil {
		t.Fatalf("cosign bundle refused: %v", err)
	}
	sum := sha256.Sum256(artifact)
	if got.SHA256 != hex.EncodeToString(sum[:]) || got.FileName != cosignArtifact {
		t.Errorf("got %+v, artifact sha256 %x", got, sum)
	}

	// cosign's bundle is still bound to its key and its bytes.
	if _, err := verify.VerifyChecksumFile(verify.NewKeySet(newTestKey(t).key), checksum, bundle, cosignArtifact, now); !errors.Is(err, verify.ErrUnknownKey) {
		t.Errorf("without cosign.pub pinned: err = %v, want ErrUnknownKey", err)
	}
	tampered := append([]byte{}, checksum...)
	tampered[0] ^= 1
	if _, err := verify.VerifyChecksumFile(verify.NewKeySet(pub), tampered, bundle, cosignArtifact, now); !errors.Is(err, verify.ErrSignature) {
		t.Errorf("tampered checksum: err = %v, want ErrSignature", err)
	}

	// The legacy --output-signature file is base64 DER ECDSA over the same bytes.
	der, err := base64.StdEncoding.DecodeString(string(readFixture(t, cosignArtifact+".sha256.sig")))
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(checksum)
	if !ecdsa.VerifyASN1(pub.Public, digest[:], der) {
		t.Error("cosign .sig does not verify over the .sha256 bytes")
	}
}
