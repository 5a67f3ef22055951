package verify_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

func pkixPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestHintFor(t *testing.T) {
	t.Parallel()
	k := newTestKey(t)
	der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	want := base64.StdEncoding.EncodeToString(sum[:])
	got, err := verify.HintFor(&k.priv.PublicKey)
	if err != nil || got != want {
		t.Fatalf("HintFor = %q, %v; want %q", got, err, want)
	}
	if k.key.Hint != want {
		t.Errorf("ParsePublicKeyPEM hint = %q, want %q", k.key.Hint, want)
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	t.Parallel()
	k := newTestKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nb, na := "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"
	tests := []struct {
		name          string
		in            []byte
		wantErr       bool
		wantText      string
		wantNotBefore string
		wantNotAfter  string
	}{
		{name: "plain", in: k.pem},
		{name: "leading comment", in: append([]byte("# release key 2026\n"), k.pem...)},
		{name: "validity headers", in: withHeaders(t, k.pem, map[string]string{"Not-Before": nb, "Not-After": na}), wantNotBefore: nb, wantNotAfter: na},
		{name: "only Not-After", in: withHeaders(t, k.pem, map[string]string{"Not-After": na}), wantNotAfter: na},
		{name: "misspelled header", in: withHeaders(t, k.pem, map[string]string{"Not-Afer": na}), wantErr: true, wantText: "unknown PEM header"},
		{name: "bad time", in: withHeaders(t, k.pem, map[string]string{"Not-After": "next year"}), wantErr: true, wantText: "Not-After"},
		{name: "inverted window", in: withHeaders(t, k.pem, map[string]string{"Not-Before": na, "Not-After": nb}), wantErr: true, wantText: "before"},
		{name: "RSA", in: pkixPEM(t, &rsaKey.PublicKey), wantErr: true, wantText: "RSA"},
		{name: "P-384", in: pkixPEM(t, &p384.PublicKey), wantErr: true, wantText: "P-384"},
		{name: "Ed25519", in: pkixPEM(t, edPub), wantErr: true, wantText: "Ed25519"},
		{name: "two blocks", in: append(append([]byte{}, k.pem...), k.pem...), wantErr: true, wantText: "after the PEM block"},
		{name: "wrong block type", in: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}), wantErr: true, wantText: "PEM block type"},
		{name: "not PEM", in: []byte("hello"), wantErr: true, wantText: "no PEM block"},
		{name: "garbage DER", in: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := verify.ParsePublicKeyPEM(tt.in, "src.pub")
			if tt.wantErr {
				if !errors.Is(err, verify.ErrKeyFormat) {
					t.Fatalf("err = %v, want ErrKeyFormat", err)
				}
				if !strings.Contains(err.Error(), tt.wantText) || !strings.Contains(err.Error(), "src.pub") {
					t.Errorf("err = %q, want it to name %q and the source", err, tt.wantText)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM: %v", err)
			}
			if got.Hint != k.key.Hint || got.Source != "src.pub" || !got.Public.Equal(&k.priv.PublicKey) {
				t.Errorf("got %+v", got)
			}
			checkTime(t, "NotBefore", got.NotBefore, tt.wantNotBefore)
			checkTime(t, "NotAfter", got.NotAfter, tt.wantNotAfter)
		})
	}
}

func checkTime(t *testing.T, what string, got time.Time, want string) {
	t.Helper()
	if want == "" {
		if !got.IsZero() {
			t.Errorf("%s = %s, want zero", what, got)
		}
		return
	}
	w, err := time.Parse(time.RFC3339, want)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(w) {
		t.Errorf("%s = %s, want %s", what, got, w)
	}
}

// keyTree lays out <root>/etc/teleport-update/keys.d with safe modes.
func keyTree(t *testing.T) (root, keysDir string) {
	t.Helper()
	root = t.TempDir()
	keysDir = filepath.Join(root, verify.KeysDir)
	if err := os.MkdirAll(keysDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for p := keysDir; p != root; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil { // independent of umask
			t.Fatal(err)
		}
	}
	return root, keysDir
}

func writeKey(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLoadKeySet(t *testing.T) {
	t.Parallel()
	embeddedKey, localKey, otherKey := newTestKey(t), newTestKey(t), newTestKey(t)
	embedded := fstest.MapFS{
		"release.pem": {Data: embeddedKey.pem},
		"README.md":   {Data: []byte("not a key")},
	}
	type layout func(t *testing.T, root, keysDir string)
	tests := []struct {
		name         string
		embedded     fs.FS
		setup        layout
		wantHints    []string
		wantWarnings []string // substrings, one per expected warning
		wantWarnErr  error
		wantErr      error
	}{
		{
			name:      "embedded only, no keys.d",
			embedded:  embedded,
			setup:     func(t *testing.T, root, _ string) { os.RemoveAll(filepath.Join(root, "etc")) },
			wantHints: []string{embeddedKey.key.Hint},
		},
		{
			name:     "embedded plus keys.d",
			embedded: embedded,
			setup: func(t *testing.T, _, d string) {
				writeKey(t, filepath.Join(d, "mirror.pub"), localKey.pem, 0o644)
				writeKey(t, filepath.Join(d, "notes.txt"), []byte("ignored: not *.pub"), 0o644)
			},
			wantHints: []string{embeddedKey.key.Hint, localKey.key.Hint},
		},
		{
			name:     "key file mode 0666 ignored with warning",
			embedded: embedded,
			setup: func(t *testing.T, _, d string) {
				writeKey(t, filepath.Join(d, "bad.pub"), otherKey.pem, 0o666)
				writeKey(t, filepath.Join(d, "good.pub"), localKey.pem, 0o600)
			},
			wantHints:    []string{embeddedKey.key.Hint, localKey.key.Hint},
			wantWarnings: []string{"bad.pub: unsafe permissions: mode 0666 is group/world-writable"},
			wantWarnErr:  verify.ErrUnsafeKeyPath,
		},
		{
			name:     "group-writable key file ignored",
			embedded: embedded,
			setup: func(t *testing.T, _, d string) {
				writeKey(t, filepath.Join(d, "bad.pub"), otherKey.pem, 0o620)
			},
			wantHints:    []string{embeddedKey.key.Hint},
			wantWarnings: []string{"mode 0620 is group/world-writable"},
			wantWarnErr:  verify.ErrUnsafeKeyPath,
		},
		{
			name:     "keys.d mode 0777 ignored entirely",
			embedded: embedded,
			setup: func(t *testing.T, _, d string) {
				writeKey(t, filepath.Join(d, "good.pub"), localKey.pem, 0o644)
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
			},
			wantHints:    []string{embeddedKey.key.Hint},
			wantWarnings: []string{"keys.d: mode 0777 is group/world-writable"},
			wantWarnErr:  verify.ErrUnsafeKeyPath,
		},
		{
			name:     "writable parent directory ignored",
			embedded: embedded,
			setup: func(t *testing.T, root, d string) {
				writeKey(t, filepath.Join(d, "good.pub"), localKey.pem, 0o644)
				if err := os.Chmod(filepath.Join(root, "etc"), 0o775); err != nil {
					t.Fatal(err)
				}
			},
			wantHints:    []string{embeddedKey.key.Hint},
			wantWarnings: []string{"/etc: mode 0775 is group/world-writable"},
			wantWarnErr:  verify.ErrUnsafeKeyPath,
		},
		{
			name:     "symlinked key file ignored",
			embedded: embedded,
			setup: func(t *testing.T, root, d string) {
				target := filepath.Join(root, "elsewhere.pub")
				writeKey(t, target, localKey.pem, 0o644)
				if err := os.Symlink(target, filepath.Join(d, "link.pub")); err != nil {
					t.Fatal(err)
				}
			},
			wantHints:    []string{embeddedKey.key.Hint},
			wantWarnings: []string{"link.pub: unsafe permissions: is a symlink"},
			wantWarnErr:  verify.ErrUnsafeKeyPath,
		},
		{
			name:     "unparsable key ignored",
			embedded: embedded,
			setup: func(t *testing.T, _, d string) {
				writeKey(t, filepath.Join(d, "junk.pub"), []byte("ssh-ed25519 AAAA"), 0o644)
			},
			wantHints:    []string{embeddedKey.key.Hint},
			wantWarnings: []string{"junk.pub"},
			wantWarnErr:  verify.ErrKeyFormat,
		},
		{
			name:     "oversized key file ignored",
			embedded: embedded,
			setup: func(t *testing.T, _, d string) {
				big := append(bytes.Repeat([]byte("# padding\n"), verify.MaxKeyFileSize/10+1), localKey.pem...)
				writeKey(t, filepath.Join(d, "big.pub"), big, 0o644)
			},
			wantHints:    []string{embeddedKey.key.Hint},
			wantWarnings: []string{"big.pub: invalid public key: larger than"},
			wantWarnErr:  verify.ErrKeyFormat,
		},
		{
			name:     "duplicate of embedded key",
			embedded: embedded,
			setup: func(t *testing.T, _, d string) {
				writeKey(t, filepath.Join(d, "copy.pub"), embeddedKey.pem, 0o644)
			},
			wantHints:    []string{embeddedKey.key.Hint},
			wantWarnings: []string{"same key as embedded:keys/release.pem"},
		},
		{
			name:      "keys.d only",
			embedded:  nil,
			setup:     func(t *testing.T, _, d string) { writeKey(t, filepath.Join(d, "k.pub"), localKey.pem, 0o644) },
			wantHints: []string{localKey.key.Hint},
		},
		{
			name:         "no usable keys",
			embedded:     fstest.MapFS{"broken.pem": {Data: []byte("nope")}},
			setup:        func(t *testing.T, _, d string) { writeKey(t, filepath.Join(d, "bad.pub"), localKey.pem, 0o666) },
			wantWarnings: []string{"broken.pem", "mode 0666"},
			wantErr:      verify.ErrNoKeys,
		},
		{
			name:     "nothing at all",
			embedded: nil,
			setup:    func(t *testing.T, root, _ string) { os.RemoveAll(filepath.Join(root, "etc")) },
			wantErr:  verify.ErrNoKeys,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root, keysDir := keyTree(t)
			tt.setup(t, root, keysDir)
			ks, warnings, err := verify.LoadKeySet(root, tt.embedded)
			for _, w := range warnings {
				t.Log(w)
			}
			if len(warnings) != len(tt.wantWarnings) {
				t.Errorf("warnings = %v, want %d matching %q", warnings, len(tt.wantWarnings), tt.wantWarnings)
			}
			for i, w := range warnings {
				if i < len(tt.wantWarnings) && !strings.Contains(w.Error(), tt.wantWarnings[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, w, tt.wantWarnings[i])
				}
				if tt.wantWarnErr != nil && !errors.Is(w, tt.wantWarnErr) {
					t.Errorf("warning %d = %v, want it to wrap %v", i, w, tt.wantWarnErr)
				}
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadKeySet: %v", err)
			}
			if ks.Len() != len(tt.wantHints) {
				t.Errorf("Len = %d, want %d", ks.Len(), len(tt.wantHints))
			}
			for _, h := range tt.wantHints {
				if _, ok := ks.Lookup(h); !ok {
					t.Errorf("key %s missing", h)
				}
			}
		})
	}
}

// TestLoadKeySetForeignOwner needs root to create a file owned by another uid.
func TestLoadKeySetForeignOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	k := newTestKey(t)
	root, d := keyTree(t)
	path := filepath.Join(d, "foreign.pub")
	writeKey(t, path, k.pem, 0o644)
	if err := os.Chown(path, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	_, warnings, err := verify.LoadKeySet(root, nil)
	if !errors.Is(err, verify.ErrNoKeys) {
		t.Fatalf("err = %v, want ErrNoKeys", err)
	}
	if len(warnings) != 1 || !errors.Is(warnings[0], verify.ErrUnsafeKeyPath) || !strings.Contains(warnings[0].Error(), "owned by uid 12345") {
		t.Fatalf("warnings = %v, want one naming uid 12345", warnings)
	}
}

// TestLoadKeySetEndToEnd: a key placed in keys.d verifies a real release.
func TestLoadKeySetEndToEnd(t *testing.T) {
	t.Parallel()
	k := newTestKey(t)
	root, d := keyTree(t)
	writeKey(t, filepath.Join(d, "mirror.pub"), withHeaders(t, k.pem, map[string]string{"Not-After": "2026-06-01T00:00:00Z"}), 0o644)
	ks, warnings, err := verify.LoadKeySet(root, nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("LoadKeySet: %v, warnings %v", err, warnings)
	}
	checksum := checksumLine("artifact", tarball)
	bundle := k.sign(t, checksum)
	if _, err := verify.VerifyChecksumFile(ks, checksum, bundle, tarball, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	if _, err := verify.VerifyChecksumFile(ks, checksum, bundle, tarball, now); !errors.Is(err, verify.ErrKeyNotValid) {
		t.Fatalf("after expiry: err = %v, want ErrKeyNotValid", err)
	}
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	k := newTestKey(f)
	f.Add(k.pem)
	f.Add(withHeaders(f, k.pem, map[string]string{"Not-Before": "2026-01-01T00:00:00Z", "Not-After": "2027-01-01T00:00:00Z"}))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		key, err := verify.ParsePublicKeyPEM(data, "fuzz")
		if err != nil {
			if !errors.Is(err, verify.ErrKeyFormat) {
				t.Fatalf("error does not wrap ErrKeyFormat: %v", err)
			}
			return
		}
		if key.Public == nil || key.Public.Curve != elliptic.P256() {
			t.Fatalf("accepted a non-P-256 key: %+v", key)
		}
		if h, err := verify.HintFor(key.Public); err != nil || h != key.Hint {
			t.Fatalf("hint %q, HintFor %q (%v)", key.Hint, h, err)
		}
	})
}
