package census

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/gravitational/teleport-update/internal/atomicfile"
	"github.com/gravitational/teleport-update/internal/safeperm"
)

// maxHostKeyFile caps the host key file read: a PEM PKCS#8 Ed25519 key is
// 119 bytes.
const maxHostKeyFile = 4 << 10

// pemType is the PEM block type of the host key.
const pemType = "PRIVATE KEY"

// LoadOrCreateHostKey returns the host's census signing key stored at path,
// creating it first when the file does not exist. The key is the host's
// identity towards its proxy: its first signed report binds the public key
// to the host id, and the proxy refuses reports signed by any other key.
//
// The file is PEM PKCS#8, mode 0600, written atomically. An existing file
// is trusted only when it is a regular file owned by root (or the running
// user), readable and writable by its owner alone.
//
// Outcomes: the key; or an error naming path and what is wrong with it
// (unsafe permissions wrap safeperm.ErrUnsafe).
func LoadOrCreateHostKey(path string) (ed25519.PrivateKey, error) {
	key, err := loadHostKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode host key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("write host key: %w", err)
	}
	return key, nil
}

// loadHostKey reads the host key at path; the error wraps fs.ErrNotExist
// when there is none.
func loadHostKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("host key: %w: %s: is a symlink", safeperm.ErrUnsafe, path)
		}
		return nil, fmt.Errorf("host key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if err := safeperm.Check(path, fi, false); err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("host key: %w: %s: mode %#o is readable by others; want 0600", safeperm.ErrUnsafe, path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxHostKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	if len(data) > maxHostKeyFile {
		return nil, fmt.Errorf("host key %s: larger than %d bytes", path, maxHostKeyFile)
	}
	return parseHostKey(path, data)
}

// parseHostKey decodes a PEM PKCS#8 Ed25519 private key.
func parseHostKey(path string, data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemType || len(rest) != 0 {
		return nil, fmt.Errorf("host key %s: want one PEM %q block and nothing else", path, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("host key %s: a %T, want an Ed25519 key", path, k)
	}
	return key, nil
}
