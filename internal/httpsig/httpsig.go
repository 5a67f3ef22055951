// Package httpsig signs and verifies census report requests with HTTP
// Message Signatures (RFC 9421) over Ed25519, in one fixed profile:
//
//	Content-Digest: sha-256=:<base64 SHA-256 of the body>:
//	Signature-Input: census=("@method" "@path" "content-digest");created=<unix s>;nonce="<seq>";keyid="<key>";alg="ed25519"
//	Signature: census=:<base64 Ed25519 signature>:
//
// The signature covers the method, the path and the body (through its
// digest, RFC 9530), plus the parameters: the signing time in seconds
// (created) and in nanoseconds (nonce, the sequence number: it grows with
// every request of a signer, and the proxy refuses one not larger than the
// last it stored, so a replayed or reordered report is refused), and the
// public key itself as keyid (base64url, unpadded), so a first report can
// be bound to its key. The nonce must fall in the created second, so a
// signer cannot push its sequence numbers beyond the time the verifier
// accepts for created.
//
// The verifier accepts exactly this profile and its exact serialisation,
// nothing looser: fewer or other covered components, other parameters,
// another algorithm, repeated headers or extra whitespace are refused.
package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// Header names of the profile.
const (
	HeaderSignatureInput = "Signature-Input"
	HeaderSignature      = "Signature"
	HeaderContentDigest  = "Content-Digest"
)

// label names the one signature of a request.
const label = "census"

// components are the covered components, serialised as in the signature
// base and Signature-Input.
const components = `("@method" "@path" "content-digest")`

// ErrSignature is wrapped by every error Verify returns.
var ErrSignature = errors.New("invalid request signature")

// Params are a signature's parameters.
type Params struct {
	// Key is the signer's public key (the keyid parameter).
	Key ed25519.PublicKey
	// Created is when the request was signed (the created parameter,
	// whole seconds).
	Created time.Time
	// Seq is the signer's sequence number (the nonce parameter): the
	// signing time in unix nanoseconds, larger for every request a signer
	// makes.
	Seq int64
}

// KeyID is the keyid a public key is named by: base64url without padding.
func KeyID(pub ed25519.PublicKey) string { return base64.RawURLEncoding.EncodeToString(pub) }

// Sign adds the Content-Digest, Signature-Input and Signature headers to
// req, whose body is body, signed by key at time at (after 1970).
func Sign(req *http.Request, body []byte, key ed25519.PrivateKey, at time.Time) error {
	seq := at.UnixNano()
	if seq < 0 {
		return fmt.Errorf("sign request: signing time %s is before 1970", at)
	}
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PrivateKeySize {
		return errors.New("sign request: not an Ed25519 private key")
	}
	digest := contentDigest(body)
	params := serializeParams(at.Unix(), seq, KeyID(pub))
	sig := ed25519.Sign(key, signatureBase(req.Method, req.URL.EscapedPath(), digest, params))
	req.Header.Set(HeaderContentDigest, digest)
	req.Header.Set(HeaderSignatureInput, label+"="+params)
	req.Header.Set(HeaderSignature, label+"=:"+base64.StdEncoding.EncodeToString(sig)+":")
	return nil
}

// inputPattern is the exact Signature-Input this profile accepts: created
// in unix seconds (at most 12 digits), nonce a decimal int64, keyid a
// base64url Ed25519 public key.
var inputPattern = regexp.MustCompile(`^` + label + `=` + regexp.QuoteMeta(components) +
	`;created=([0-9]{1,12});nonce="(0|[1-9][0-9]{0,18})";keyid="([A-Za-z0-9_-]{43})";alg="ed25519"$`)

// signaturePattern is the exact Signature this profile accepts: one
// 64-byte Ed25519 signature as an RFC 8941 byte sequence.
var signaturePattern = regexp.MustCompile(`^` + label + `=:([A-Za-z0-9+/]{86}==):$`)

// Verify checks the signature of a request whose method, escaped path and
// headers are given, and whose body is body. It returns the signature's
// parameters; the caller decides whether the key, the time and the sequence
// number are acceptable.
//
// Outcomes: the parameters and nil; or an error wrapping ErrSignature that
// names what is missing or wrong.
func Verify(method, path string, h http.Header, body []byte) (Params, error) {
	input, err := single(h, HeaderSignatureInput)
	if err != nil {
		return Params{}, err
	}
	sigHeader, err := single(h, HeaderSignature)
	if err != nil {
		return Params{}, err
	}
	digest, err := single(h, HeaderContentDigest)
	if err != nil {
		return Params{}, err
	}
	p, err := parseInput(input)
	if err != nil {
		return Params{}, err
	}
	m := signaturePattern.FindStringSubmatch(sigHeader)
	if m == nil {
		return Params{}, fmt.Errorf("%w: %s is not %s=:<base64 Ed25519 signature>:", ErrSignature, HeaderSignature, label)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(m[1])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Params{}, fmt.Errorf("%w: %s does not hold a 64-byte signature", ErrSignature, HeaderSignature)
	}
	if want := contentDigest(body); digest != want {
		return Params{}, fmt.Errorf("%w: %s does not match the body (want %s)", ErrSignature, HeaderContentDigest, want)
	}
	params := serializeParams(p.Created.Unix(), p.Seq, KeyID(p.Key))
	if !ed25519.Verify(p.Key, signatureBase(method, path, digest, params), sig) {
		return Params{}, fmt.Errorf("%w: the signature does not verify with key %s", ErrSignature, KeyID(p.Key))
	}
	return p, nil
}

// parseInput parses a Signature-Input header of this profile.
func parseInput(input string) (Params, error) {
	m := inputPattern.FindStringSubmatch(input)
	if m == nil {
		return Params{}, fmt.Errorf("%w: %s is not %s=%s;created=<unix>;nonce=\"<seq>\";keyid=\"<key>\";alg=\"ed25519\"",
			ErrSignature, HeaderSignatureInput, label, components)
	}
	created, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return Params{}, fmt.Errorf("%w: created: %v", ErrSignature, err)
	}
	seq, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return Params{}, fmt.Errorf("%w: nonce: %v", ErrSignature, err)
	}
	if seq/int64(time.Second) != created {
		return Params{}, fmt.Errorf("%w: nonce %d is not a time in the created second %d", ErrSignature, seq, created)
	}
	key, err := base64.RawURLEncoding.Strict().DecodeString(m[3])
	if err != nil || len(key) != ed25519.PublicKeySize {
		return Params{}, fmt.Errorf("%w: keyid is not a base64url Ed25519 public key", ErrSignature)
	}
	return Params{Key: ed25519.PublicKey(key), Created: time.Unix(created, 0), Seq: seq}, nil
}

// single returns the one value of header name.
func single(h http.Header, name string) (string, error) {
	switch v := h.Values(name); len(v) {
	case 0:
		return "", fmt.Errorf("%w: the %s header is missing", ErrSignature, name)
	case 1:
		return v[0], nil
	default:
		return "", fmt.Errorf("%w: the %s header is given %d times", ErrSignature, name, len(v))
	}
}

// contentDigest is the Content-Digest (RFC 9530) of body.
func contentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// serializeParams is the signature parameters as RFC 9421 serialises
// them, without the label.
func serializeParams(created, seq int64, keyID string) string {
	return fmt.Sprintf(`%s;created=%d;nonce="%d";keyid="%s";alg="ed25519"`, components, created, seq, keyID)
}

// signatureBase is the RFC 9421 signature base of the covered components.
func signatureBase(method, path, digest, params string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "\"@method\": %s\n\"@path\": %s\n\"content-digest\": %s\n\"@signature-params\": %s",
		method, path, digest, params)
	return b.Bytes()
}
