package verify_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// BenchmarkVerifyChecksumFile measures the whole check (bundle parse, key
// lookup, sigstore-go verification, line parse); BenchmarkECDSABaseline is the
// bare P-256 verification it cannot beat.
func BenchmarkVerifyChecksumFile(b *testing.B) {
	k := newTestKey(b)
	checksum := checksumLine("bench", tarball)
	bundle := k.sign(b, checksum)
	ks := verify.NewKeySet(k.key)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := verify.VerifyChecksumFile(ks, checksum, bundle, tarball, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkECDSABaseline(b *testing.B) {
	k := newTestKey(b)
	checksum := checksumLine("bench", tarball)
	digest := sha256.Sum256(checksum)
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256(checksum)
		if !ecdsa.VerifyASN1(&k.priv.PublicKey, d[:], sig) {
			b.Fatal("bad signature")
		}
	}
}
