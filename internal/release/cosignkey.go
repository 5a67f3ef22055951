package release

import (
	"crypto/x509"
	"encoding/json"
	"fmt"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
)

// PEM block types of cosign's encrypted private keys (v2+ and v1).
const (
	pemSigstoreEncrypted = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemCosignEncrypted   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// cosignEncrypted is the JSON body of cosign's encrypted key PEM block
// (go-securesystemslib's "encrypted" format: scrypt + nacl/secretbox).
type cosignEncrypted struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N int `json:"N"`
			R int `json:"r"`
			P int `json:"p"`
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// decryptCosignKey decrypts the body of a cosign encrypted key with password
// and returns the PKCS#8 DER inside. Only the scrypt parameter sets cosign
// writes are accepted, so a hostile file cannot demand unbounded memory.
func decryptCosignKey(body, password []byte) ([]byte, error) {
	var d cosignEncrypted
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("cosign key: %w", err)
	}
	if d.KDF.Name != "scrypt" {
		return nil, fmt.Errorf("cosign key: unknown kdf %q, want scrypt", d.KDF.Name)
	}
	if d.Cipher.Name != "nacl/secretbox" {
		return nil, fmt.Errorf("cosign key: unknown cipher %q, want nacl/secretbox", d.Cipher.Name)
	}
	p := d.KDF.Params
	switch {
	case p.R == 8 && p.P == 1 && (p.N == 1<<15 || p.N == 1<<16 || p.N == 1<<17):
	default:
		return nil, fmt.Errorf("cosign key: unsupported scrypt parameters N=%d r=%d p=%d", p.N, p.R, p.P)
	}
	var nonce [24]byte
	if len(d.Cipher.Nonce) != len(nonce) {
		return nil, fmt.Errorf("cosign key: nonce is %d bytes, want %d", len(d.Cipher.Nonce), len(nonce))
	}
	copy(nonce[:], d.Cipher.Nonce)
	k, err := scrypt.Key(password, d.KDF.Salt, p.N, p.R, p.P, 32)
	if err != nil {
		return nil, fmt.Errorf("cosign key: %w", err)
	}
	var key [32]byte
	copy(key[:], k)
	der, ok := secretbox.Open(nil, d.Ciphertext, &nonce, &key)
	if !ok {
		return nil, fmt.Errorf("cosign key: decryption failed (wrong password?)")
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
		return nil, fmt.Errorf("cosign key: decrypted key: %w", err)
	}
	return der, nil
}
