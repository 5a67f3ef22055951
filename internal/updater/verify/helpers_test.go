package verify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gravitational/teleport-update/internal/release"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// testKey is a freshly generated signing key and its pinned form.
type testKey struct {
	priv *ecdsa.PrivateKey
	key  verify.Key
	pem  []byte
}

func newTestKey(t testing.TB) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := release.PublicKeyPEM(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := verify.ParsePublicKeyPEM(pemBytes, "test")
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv, key: k, pem: pemBytes}
}

// sign returns a real bundle by k over msg, as release.Sign writes it.
func (k testKey) sign(t testing.TB, msg []byte) []byte {
	t.Helper()
	b, _, err := release.SignChecksum(k.priv, msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutateBundle decodes bundle JSON, applies f and re-encodes it.
func mutateBundle(t testing.TB, bundle []byte, f func(*protobundle.Bundle)) []byte {
	t.Helper()
	pb := new(protobundle.Bundle)
	if err := protojson.Unmarshal(bundle, pb); err != nil {
		t.Fatal(err)
	}
	f(pb)
	out, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// selfSignedCert returns the DER of a self-signed certificate for k.
func selfSignedCert(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "signer@example.com"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// withHeaders re-encodes a public key PEM with the given PEM headers.
func withHeaders(t testing.TB, pubPEM []byte, headers map[string]string) []byte {
	t.Helper()
	block, _ := pem.Decode(pubPEM)
	if block == nil {
		t.Fatal("no PEM block")
	}
	block.Headers = headers
	return pem.EncodeToMemory(block)
}
