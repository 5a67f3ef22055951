package release_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const artifactName = "teleport-v16.4.6-linux-amd64-bin.tar.gz"

// signedRelease generates a key in a temp dir, writes an artifact and signs it.
func signedRelease(t *testing.T) (dir, artifact string, pub []byte) {
	t.Helper()
	dir = t.TempDir()
	privPath, pubPath, err := release.GenerateKey(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := release.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	artifact = filepath.Join(dir, artifactName)
	if err := os.WriteFile(artifact, []byte("pretend this is a tarball\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := release.Sign(key, artifact); err != nil {
		t.Fatal(err)
	}
	pub, err = os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	return dir, artifact, pub
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new")
	privPath, pubPath, err := release.GenerateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		mode fs.FileMode
	}{{privPath, 0o600}, {pubPath, 0o644}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		// 0644 may be narrowed by umask; the private key must be exactly 0600.
		if got := fi.Mode().Perm(); got&^c.mode != 0 || (c.mode == 0o600 && got != 0o600) {
			t.Errorf("%s mode = %#o, want %#o", c.path, got, c.mode)
		}
	}
	priv, err := release.LoadPrivateKey(privPath)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := verify.ParsePublicKeyPEM(pubPEM, pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public.Equal(&priv.PublicKey) {
		t.Error("public key does not match private key")
	}
	privPEM, _ := os.ReadFile(privPath)
	if !bytes.HasPrefix(privPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("private key is not PKCS#8 PEM: %.40q", privPEM)
	}

	// Refuses to overwrite, and leaves the existing key untouched.
	if _, _, err := release.GenerateKey(dir); !errors.Is(err, release.ErrExists) {
		t.Fatalf("second GenerateKey err = %v, want ErrExists", err)
	}
	again, _ := os.ReadFile(privPath)
	if !bytes.Equal(again, privPEM) {
		t.Error("existing private key was modified")
	}
}

func TestLoadPrivateKey(t *testing.T) {
	t.Parallel()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		data     []byte
		mode     fs.FileMode
		wantText string // empty: must load
	}{
		{name: "PKCS#8", data: pkcs8(p256), mode: 0o600},
		{name: "SEC1", data: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), mode: 0o400},
		{name: "group readable", data: pkcs8(p256), mode: 0o640, wantText: "mode 0640"},
		{name: "world readable", data: pkcs8(p256), mode: 0o604, wantText: "mode 0604"},
		{name: "P-384", data: pkcs8(p384), mode: 0o600, wantText: "P-384"},
		{name: "cosign encrypted", data: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte("{}")}), mode: 0o600, wantText: "unknown kdf"},
		{name: "public key", data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), mode: 0o600, wantText: "PEM block type"},
		{name: "not PEM", data: []byte("hello"), mode: 0o600, wantText: "no PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, tt.data, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			k, err := release.LoadPrivateKey(path)
			if tt.wantText != "" {
				if !errors.Is(err, release.ErrKeyFile) || !strings.Contains(err.Error(), tt.wantText) {
					t.Fatalf("err = %v, want ErrKeyFile naming %q", err, tt.wantText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !k.Equal(p256) {
				t.Error("loaded a different key")
			}
		})
	}
}

func TestSignWritesReleaseFiles(t *testing.T) {
	t.Parallel()
	dir, artifact, pub := signedRelease(t)

	content, _ := os.ReadFile(artifact)
	sum := sha256.Sum256(content)
	checksum, err := os.ReadFile(artifact + release.ChecksumSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(sum[:]) + "  " + artifactName + "\n"; string(checksum) != want {
		t.Errorf(".sha256 = %q, want %q", checksum, want)
	}

	// The .sig is base64 DER ECDSA over the .sha256 bytes.
	k, err := verify.ParsePublicKeyPEM(pub, "pub")
	if err != nil {
		t.Fatal(err)
	}
	sigB64, err := os.ReadFile(artifact + release.SignatureSuffix)
	if err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(string(sigB64))
	if err != nil {
		t.Fatalf(".sig is not base64: %v", err)
	}
	digest := sha256.Sum256(checksum)
	if !ecdsa.VerifyASN1(k.Public, digest[:], der) {
		t.Error(".sig does not verify over the .sha256 bytes")
	}

	// The bundle verifies with the updater's verifier.
	bundle, err := os.ReadFile(artifact + release.BundleSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify.VerifyChecksumFile(verify.NewKeySet(k), checksum, bundle, artifactName, now); err != nil {
		t.Errorf("bundle does not verify: %v", err)
	}

	// Atomic writes leave no temp files behind.
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"keys", artifactName, artifactName + ".sha256", artifactName + ".sha256.sig", artifactName + ".sha256.sigstore.json"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("dir holds %v, want %v", names, want)
	}
}

// TestSignatureVerifiesWithOpenSSL runs the check install.sh performs.
func TestSignatureVerifiesWithOpenSSL(t *testing.T) {
	t.Parallel()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir, artifact, _ := signedRelease(t)
	pubPath := filepath.Join(dir, "keys", release.PublicKeyFile)
	sigB64, err := os.ReadFile(artifact + release.SignatureSuffix)
	if err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(string(sigB64))
	if err != nil {
		t.Fatal(err)
	}
	derPath := filepath.Join(dir, "sig.der")
	if err := os.WriteFile(derPath, der, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(file string) ([]byte, error) {
		return exec.Command(openssl, "dgst", "-sha256", "-verify", pubPath, "-signature", derPath, file).CombinedOutput()
	}
	if out, err := run(artifact + release.ChecksumSuffix); err != nil {
		t.Fatalf("openssl refused a genuine signature: %v\n%s", err, out)
	}
	// And it must be able to fail: a tampered checksum file is refused.
	tampered := filepath.Join(dir, "tampered.sha256")
	data, _ := os.ReadFile(artifact + release.ChecksumSuffix)
	data[0] ^= 1
	if err := os.WriteFile(tampered, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(tampered); err == nil {
		t.Fatalf("openssl accepted a tampered checksum file:\n%s", out)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	other := t.TempDir()
	_, otherPub, err := release.GenerateKey(other)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, _ := os.ReadFile(otherPub)

	tests := []struct {
		name    string
		mutate  func(t *testing.T, dir, artifact string) string // returns the file to verify
		wrongPK bool
		wantErr error
	}{
		{name: "genuine", mutate: func(_ *testing.T, _, a string) string { return a }},
		{name: "flipped byte in artifact", mutate: func(t *testing.T, _, a string) string {
			flip(t, a, 0)
			return a
		}, wantErr: release.ErrArtifactMismatch},
		{name: "flipped byte in checksum file", mutate: func(t *testing.T, _, a string) string {
			flip(t, a+release.ChecksumSuffix, 5)
			return a
		}, wantErr: verify.ErrSignature},
		{name: "release files served under another name", mutate: func(t *testing.T, dir, a string) string {
			renamed := filepath.Join(dir, "teleport-v16.4.6-linux-arm64-bin.tar.gz")
			for _, s := range []string{"", release.ChecksumSuffix, release.BundleSuffix} {
				if err := os.Rename(a+s, renamed+s); err != nil {
					t.Fatal(err)
				}
			}
			return renamed
		}, wantErr: verify.ErrFileNameMismatch},
		{name: "without .sig", mutate: func(t *testing.T, _, a string) string {
			os.Remove(a + release.SignatureSuffix)
			return a
		}},
		{name: "tampered .sig", mutate: func(t *testing.T, _, a string) string {
			// A valid signature, but over other bytes.
			other := a + ".other"
			if err := os.WriteFile(other, []byte("other"), 0o644); err != nil {
				t.Fatal(err)
			}
			key, err := release.LoadPrivateKey(filepath.Join(filepath.Dir(a), "keys", release.PrivateKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := release.Sign(key, other); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other+release.SignatureSuffix, a+release.SignatureSuffix); err != nil {
				t.Fatal(err)
			}
			return a
		}, wantErr: verify.ErrSignature},
		{name: "other key", mutate: func(_ *testing.T, _, a string) string { return a }, wrongPK: true, wantErr: verify.ErrUnknownKey},
		{name: "missing bundle", mutate: func(t *testing.T, _, a string) string {
			os.Remove(a + release.BundleSuffix)
			return a
		}, wantErr: fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, artifact, pub := signedRelease(t)
			file := tt.mutate(t, dir, artifact)
			if tt.wrongPK {
				pub = otherPEM
			}
			v, err := release.Verify(pub, file, now)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.FileName != artifactName {
				t.Errorf("FileName = %q", v.FileName)
			}
		})
	}
}

func flip(t *testing.T, path string, at int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[at] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
