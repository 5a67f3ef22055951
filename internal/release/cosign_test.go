package release_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// cosignDir holds a release signed once with the real cosign v3.1.2 CLI.
var cosignDir = filepath.Join("..", "updater", "verify", "testdata", "cosign")

const cosignArtifact = "teleport-v16.4.6-linux-amd64-bin.tar.gz"

// jsonShape flattens a JSON document to its sorted set of key paths with the
// JSON type of each leaf, e.g. "messageSignature.messageDigest.algorithm:string".
func jsonShape(t *testing.T, data []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(strings.TrimPrefix(prefix+"."+k, "."), c)
			}
		case []any:
			for _, c := range x {
				walk(prefix+"[]", c)
			}
		case string:
			out = append(out, prefix+":string")
		default:
			out = append(out, prefix+":other")
		}
	}
	walk("", v)
	sort.Strings(out)
	return out
}

// TestBundleShapeMatchesCosign: a bundle release.Sign writes has cosign's
// media type, exactly cosign's JSON field set, the same digest algorithm and
// the same hint scheme; its .sig file has cosign's encoding.
func TestBundleShapeMatchesCosign(t *testing.T) {
	t.Parallel()
	cosignBundle, err := os.ReadFile(filepath.Join(cosignDir, cosignArtifact+".sha256.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	cosignSig, err := os.ReadFile(filepath.Join(cosignDir, cosignArtifact+".sha256.sig"))
	if err != nil {
		t.Fatal(err)
	}
	_, artifact, pub := signedRelease(t)
	ours, err := os.ReadFile(artifact + release.BundleSuffix)
	if err != nil {
		t.Fatal(err)
	}
	ourSig, err := os.ReadFile(artifact + release.SignatureSuffix)
	if err != nil {
		t.Fatal(err)
	}

	if got, want := jsonShape(t, ours), jsonShape(t, cosignBundle); !reflect.DeepEqual(got, want) {
		t.Errorf("bundle fields differ from cosign's:\n ours   %v\n cosign %v", got, want)
	}
	var o, c struct {
		MediaType            string
		VerificationMaterial struct{ PublicKey struct{ Hint string } }
		MessageSignature     struct{ MessageDigest struct{ Algorithm string } }
	}
	if err := json.Unmarshal(ours, &o); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cosignBundle, &c); err != nil {
		t.Fatal(err)
	}
	if o.MediaType != c.MediaType || o.MediaType != verify.BundleMediaType {
		t.Errorf("media type %q, cosign %q", o.MediaType, c.MediaType)
	}
	if o.MessageSignature.MessageDigest.Algorithm != c.MessageSignature.MessageDigest.Algorithm {
		t.Errorf("digest algorithm %q, cosign %q", o.MessageSignature.MessageDigest.Algorithm, c.MessageSignature.MessageDigest.Algorithm)
	}

	// Same hint scheme: each hint is HintFor of the signer's public key.
	for _, tc := range []struct {
		what, hint, pubFile string
		pub                 []byte
	}{
		{what: "ours", hint: o.VerificationMaterial.PublicKey.Hint, pub: pub},
		{what: "cosign", hint: c.VerificationMaterial.PublicKey.Hint, pubFile: filepath.Join(cosignDir, "cosign.pub")},
	} {
		if tc.pubFile != "" {
			if tc.pub, err = os.ReadFile(tc.pubFile); err != nil {
				t.Fatal(err)
			}
		}
		k, err := verify.ParsePublicKeyPEM(tc.pub, tc.what)
		if err != nil {
			t.Fatal(err)
		}
		if tc.hint != k.Hint {
			t.Errorf("%s hint %q, HintFor(public key) %q", tc.what, tc.hint, k.Hint)
		}
	}

	// .sig: plain base64 of the DER signature, no trailing newline, like cosign.
	if strings.TrimSpace(string(ourSig)) != string(ourSig) || strings.TrimSpace(string(cosignSig)) != string(cosignSig) {
		t.Errorf(".sig whitespace differs: ours %q, cosign %q", ourSig, cosignSig)
	}
}

// TestVerifyCosignSignedRelease: `release verify` accepts a release cosign signed.
func TestVerifyCosignSignedRelease(t *testing.T) {
	t.Parallel()
	pub, err := os.ReadFile(filepath.Join(cosignDir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := release.Verify(pub, filepath.Join(cosignDir, cosignArtifact), now)
	if err != nil {
		t.Fatalf("cosign-signed release refused: %v", err)
	}
	if v.FileName != cosignArtifact {
		t.Errorf("FileName = %q", v.FileName)
	}
}

// cosignKey copies the fixture's cosign.key (encrypted with an empty
// password) to a 0600 file, since git does not keep file modes.
func cosignKey(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cosignDir, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cosign.key")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSignWithCosignKey: release.Sign with cosign's own key writes a bundle
// whose hint is exactly the one cosign wrote, and which verifies against
// cosign.pub.
func TestSignWithCosignKey(t *testing.T) {
	t.Parallel()
	path := cosignKey(t)
	if _, err := release.LoadPrivateKeyPassword(path, []byte("wrong")); !errors.Is(err, release.ErrKeyFile) || !strings.Contains(err.Error(), "decryption failed") {
		t.Fatalf("wrong password: err = %v, want ErrKeyFile naming decryption", err)
	}
	key, err := release.LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(filepath.Join(cosignDir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := verify.ParsePublicKeyPEM(pubPEM, "cosign.pub")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Public.Equal(&key.PublicKey) {
		t.Fatal("decrypted cosign.key does not match cosign.pub")
	}

	dir := t.TempDir()
	artifact := filepath.Join(dir, cosignArtifact)
	data, err := os.ReadFile(filepath.Join(cosignDir, cosignArtifact))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(artifact, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := release.Sign(key, artifact); err != nil {
		t.Fatal(err)
	}
	// Same checksum file byte for byte as sha256sum wrote for cosign.
	ours, _ := os.ReadFile(artifact + release.ChecksumSuffix)
	theirs, _ := os.ReadFile(filepath.Join(cosignDir, cosignArtifact+release.ChecksumSuffix))
	if string(ours) != string(theirs) {
		t.Errorf(".sha256 = %q, sha256sum wrote %q", ours, theirs)
	}
	var o, c struct {
		VerificationMaterial struct{ PublicKey struct{ Hint string } }
	}
	ob, _ := os.ReadFile(artifact + release.BundleSuffix)
	cb, _ := os.ReadFile(filepath.Join(cosignDir, cosignArtifact+release.BundleSuffix))
	if err := errors.Join(json.Unmarshal(ob, &o), json.Unmarshal(cb, &c)); err != nil {
		t.Fatal(err)
	}
	if o.VerificationMaterial.PublicKey.Hint != c.VerificationMaterial.PublicKey.Hint {
		t.Errorf("hint %q, cosign wrote %q for the same key", o.VerificationMaterial.PublicKey.Hint, c.VerificationMaterial.PublicKey.Hint)
	}
	if _, err := release.Verify(pubPEM, artifact, now); err != nil {
		t.Errorf("our bundle by cosign's key does not verify: %v", err)
	}

	// When the cosign CLI is installed, it must accept our files too.
	cosign, err := exec.LookPath("cosign")
	if err != nil {
		t.Log("cosign not in PATH; skipping the cosign verify-blob check")
		return
	}
	out, err := exec.Command(cosign, "verify-blob", "--key", filepath.Join(cosignDir, "cosign.pub"),
		"--bundle", artifact+release.BundleSuffix, "--use-signed-timestamps=false", "--insecure-ignore-tlog=true",
		artifact+release.ChecksumSuffix).CombinedOutput()
	if err != nil {
		t.Errorf("cosign verify-blob refused our bundle: %v\n%s", err, out)
	}
}
