package verify

import (
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"google.golang.org/protobuf/encoding/protojson"
)

// BundleMediaType is the only bundle media type accepted: Sigstore bundle
// v0.3 in its JSON encoding, what cosign v3 writes.
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// LoadBundle parses a Sigstore bundle and checks that it is the one shape the
// updater accepts: media type BundleMediaType, a messageSignature over a
// SHA2_256 digest, and verificationMaterial.publicKey with a non-empty hint.
// It returns the parsed bundle and the hint. It does not check the signature.
//
// Transparency-log entries and RFC 3161 timestamps, if present, are left to
// sigstore-go's format checks and are not relied on: trust comes from the
// pinned key alone.
//
// Failures wrap ErrInputTooLarge (more than MaxBundleSize bytes) or ErrBundleFormat,
// with a message naming what was wrong (DSSE envelope, certificate, X.509
// chain, media type, digest algorithm, JSON syntax).
func LoadBundle(data []byte) (*bundle.Bundle, string, error) {
	if len(data) > MaxBundleSize {
		return nil, "", fmt.Errorf("load bundle: %w: bundle is larger than %d bytes", ErrInputTooLarge, MaxBundleSize)
	}
	pb := new(protobundle.Bundle)
	if err := protojson.Unmarshal(data, pb); err != nil {
		return nil, "", fmt.Errorf("load bundle: %w: invalid bundle JSON: %v", ErrBundleFormat, err)
	}
	if pb.GetMediaType() != BundleMediaType {
		return nil, "", fmt.Errorf("load bundle: %w: media type %q, want %q", ErrBundleFormat, pb.GetMediaType(), BundleMediaType)
	}
	switch c := pb.GetContent().(type) {
	case *protobundle.Bundle_MessageSignature:
		if c.MessageSignature == nil {
			return nil, "", fmt.Errorf("load bundle: %w: empty messageSignature", ErrBundleFormat)
		}
	case *protobundle.Bundle_DsseEnvelope:
		return nil, "", fmt.Errorf("load bundle: %w: DSSE envelope bundles are not accepted, want messageSignature", ErrBundleFormat)
	case nil:
		return nil, "", fmt.Errorf("load bundle: %w: no messageSignature", ErrBundleFormat)
	default:
		return nil, "", fmt.Errorf("load bundle: %w: unknown content %T, want messageSignature", ErrBundleFormat, c)
	}
	var hint string
	switch m := pb.GetVerificationMaterial().GetContent().(type) {
	case *protobundle.VerificationMaterial_PublicKey:
		hint = m.PublicKey.GetHint()
		if hint == "" {
			return nil, "", fmt.Errorf("load bundle: %w: verificationMaterial.publicKey has no hint", ErrBundleFormat)
		}
	case *protobundle.VerificationMaterial_Certificate:
		return nil, "", fmt.Errorf("load bundle: %w: certificate (keyless) bundles are not accepted, want verificationMaterial.publicKey", ErrBundleFormat)
	case *protobundle.VerificationMaterial_X509CertificateChain:
		return nil, "", fmt.Errorf("load bundle: %w: x509CertificateChain bundles are not accepted, want verificationMaterial.publicKey", ErrBundleFormat)
	case nil:
		return nil, "", fmt.Errorf("load bundle: %w: no verificationMaterial.publicKey", ErrBundleFormat)
	default:
		return nil, "", fmt.Errorf("load bundle: %w: unknown verification material %T, want publicKey", ErrBundleFormat, m)
	}
	ms := pb.GetMessageSignature()
	if alg := ms.GetMessageDigest().GetAlgorithm(); alg != protocommon.HashAlgorithm_SHA2_256 {
		return nil, "", fmt.Errorf("load bundle: %w: messageDigest algorithm %s, want SHA2_256", ErrBundleFormat, alg)
	}
	if n := len(ms.GetMessageDigest().GetDigest()); n != 32 {
		return nil, "", fmt.Errorf("load bundle: %w: messageDigest is %d bytes, want 32", ErrBundleFormat, n)
	}
	if len(ms.GetSignature()) == 0 {
		return nil, "", fmt.Errorf("load bundle: %w: messageSignature has no signature", ErrBundleFormat)
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		return nil, "", fmt.Errorf("load bundle: %w: %v", ErrBundleFormat, err)
	}
	return b, hint, nil
}
