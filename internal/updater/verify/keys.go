package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gravitational/teleport-update/internal/safeperm"
)

// MaxKeyFileSize caps a public key file; a P-256 PEM key is under 200 bytes.
const MaxKeyFileSize = 16 << 10

// KeysDir is where a local admin places extra pinned keys, relative to the root.
const KeysDir = "etc/teleport-update/keys.d"

// Key loading errors. These are configuration problems, not verification
// failures, so they do not wrap ErrVerification.
var (
	// ErrNoKeys: no usable pinned key at all; every install must be refused.
	ErrNoKeys = errors.New("no usable pinned public keys")
	// ErrKeyFormat: a key file is not one PEM ECDSA P-256 public key.
	ErrKeyFormat = errors.New("invalid public key")
	// ErrUnsafeKeyPath: a key file or a directory above it is writable by
	// group/others, owned by someone other than root or the current user,
	// or is not a regular file/directory. It is safeperm.ErrUnsafe: keys.d
	// follows the same rule as every other path teleport-update trusts.
	ErrUnsafeKeyPath = safeperm.ErrUnsafe
)

// HintFor returns the Sigstore key hint for pub: base64 (standard encoding)
// of the SHA-256 of its PKIX DER encoding, as cosign writes it.
func HintFor(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("compute key hint: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// PEM headers that bound a key's validity (RFC 3339 values).
const (
	headerNotBefore = "Not-Before"
	headerNotAfter  = "Not-After"
)

// ParsePublicKeyPEM parses exactly one "PUBLIC KEY" PEM block holding an
// ECDSA P-256 key. Text before the block is ignored (comments); anything but
// whitespace after it is refused. Optional PEM headers "Not-Before" and
// "Not-After" (RFC 3339) set the validity window; any other header is refused
// so that a typo cannot silently drop an expiry. source is recorded in the
// Key and used in errors. Errors wrap ErrKeyFormat and name the problem
// (e.g. "RSA keys are not accepted").
func ParsePublicKeyPEM(data []byte, source string) (Key, error) {
	fail := func(format string, args ...any) (Key, error) {
		return Key{}, fmt.Errorf("parse public key %s: %w: %s", source, ErrKeyFormat, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxKeyFileSize {
		return fail("larger than %d bytes", MaxKeyFileSize)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return fail("no PEM block")
	}
	if block.Type != "PUBLIC KEY" {
		return fail("PEM block type %q, want \"PUBLIC KEY\"", block.Type)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return fail("unexpected data after the PEM block")
	}
	k := Key{Source: source}
	for name, value := range block.Headers {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(value))
		switch name {
		case headerNotBefore:
			if err != nil {
				return fail("header %s: %v", name, err)
			}
			k.NotBefore = t
		case headerNotAfter:
			if err != nil {
				return fail("header %s: %v", name, err)
			}
			k.NotAfter = t
		default:
			return fail("unknown PEM header %q (want %s or %s)", name, headerNotBefore, headerNotAfter)
		}
	}
	if !k.NotBefore.IsZero() && !k.NotAfter.IsZero() && k.NotAfter.Before(k.NotBefore) {
		return fail("%s is before %s", headerNotAfter, headerNotBefore)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return fail("%v", err)
	}
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return fail("ECDSA curve %s is not accepted, want P-256", p.Curve.Params().Name)
		}
		k.Public = p
	case *rsa.PublicKey:
		return fail("RSA keys are not accepted, want ECDSA P-256")
	case ed25519.PublicKey:
		return fail("Ed25519 keys are not accepted, want ECDSA P-256")
	default:
		return fail("%T keys are not accepted, want ECDSA P-256", pub)
	}
	if k.Hint, err = HintFor(k.Public); err != nil {
		return fail("%v", err)
	}
	return k, nil
}

// LoadKeySet builds the pinned key set: every "*.pem" at the top of embedded
// (may be nil) plus every "*.pub" in <root>/etc/teleport-update/keys.d.
//
// Key files under root are trusted only if the file and every directory from
// root down to it are neither group- nor world-writable, are owned by uid 0 or
// the current effective uid, and are real directories/regular files (no
// symlinks). A bad file is skipped with a warning naming the path and the
// reason; a bad directory skips all of keys.d with one warning. A missing
// keys.d is not a warning. Unparsable keys and duplicates are skipped with a
// warning too. Warnings wrap ErrUnsafeKeyPath or ErrKeyFormat.
//
// If no usable key remains, err wraps ErrNoKeys (and the warnings say why).
func LoadKeySet(root string, embedded fs.FS) (ks *KeySet, warnings []error, err error) {
	var keys []Key
	seen := map[string]string{}
	add := func(k Key) {
		if prev, dup := seen[k.Hint]; dup {
			warnings = append(warnings, fmt.Errorf("ignoring key %s: same key as %s", k.Source, prev))
			return
		}
		seen[k.Hint] = k.Source
		keys = append(keys, k)
	}

	if embedded != nil {
		names, err := fs.Glob(embedded, "*.pem")
		if err != nil {
			return nil, nil, fmt.Errorf("load key set: list embedded keys: %w", err)
		}
		for _, name := range names {
			data, err := fs.ReadFile(embedded, name)
			if err != nil {
				warnings = append(warnings, fmt.Errorf("ignoring embedded key %s: %w", name, err))
				continue
			}
			k, err := ParsePublicKeyPEM(data, "embedded:keys/"+name)
			if err != nil {
				warnings = append(warnings, fmt.Errorf("ignoring embedded key: %w", err))
				continue
			}
			add(k)
		}
	}

	local, localWarnings := loadKeysDir(root)
	warnings = append(warnings, localWarnings...)
	for _, k := range local {
		add(k)
	}

	if len(keys) == 0 {
		return nil, warnings, fmt.Errorf("load key set: %w (embedded and %s)", ErrNoKeys, filepath.Join(root, KeysDir))
	}
	return NewKeySet(keys...), warnings, nil
}

// loadKeysDir reads <root>/KeysDir/*.pub under the permission rule.
func loadKeysDir(root string) ([]Key, []error) {
	dir := filepath.Join(root, KeysDir)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	// Every directory from root down to keys.d.
	if err := safeperm.CheckDirs(root, KeysDir); err != nil {
		return nil, []error{fmt.Errorf("ignoring all keys in %s: %w", dir, err)}
	}
	entries, err := os.ReadDir(dir) // sorted by name: warnings come in a stable order
	if err != nil {
		return nil, []error{fmt.Errorf("ignoring all keys in %s: %w", dir, err)}
	}
	var keys []Key
	var warnings []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pub") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		k, err := readKeyFile(path)
		switch {
		case errors.Is(err, ErrKeyFormat): // already names the path
			warnings = append(warnings, fmt.Errorf("ignoring key file: %w", err))
			continue
		case err != nil:
			warnings = append(warnings, fmt.Errorf("ignoring key file %s: %w", path, err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, warnings
}

// readKeyFile opens path without following symlinks, checks the opened file's
// mode and owner, and parses it.
func readKeyFile(path string) (Key, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return Key{}, fmt.Errorf("%w: is a symlink", ErrUnsafeKeyPath)
		}
		return Key{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, err
	}
	if reason := safeperm.Reason(fi, false, os.Geteuid()); reason != "" {
		return Key{}, fmt.Errorf("%w: %s", ErrUnsafeKeyPath, reason)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return Key{}, err
	}
	if len(data) > MaxKeyFileSize {
		return Key{}, fmt.Errorf("parse public key %s: %w: larger than %d bytes", path, ErrKeyFormat, MaxKeyFileSize)
	}
	return ParsePublicKeyPEM(data, path)
}
