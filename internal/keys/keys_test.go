package keys_test

import (
	"io/fs"
	"testing"

	"github.com/gravitational/teleport-update/internal/keys"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// TestEmbeddedKeys: every compiled-in key is a usable ECDSA P-256 key, so a
// broken key file fails the build's tests rather than every host's update.
func TestEmbeddedKeys(t *testing.T) {
	names, err := fs.Glob(keys.FS, "*.pem")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no embedded keys")
	}
	for _, name := range names {
		data, err := fs.ReadFile(keys.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := verify.ParsePublicKeyPEM(data, name); err != nil {
			t.Errorf("embedded key %s: %v", name, err)
		}
	}
	ks, warnings, err := verify.LoadKeySet(t.TempDir(), keys.FS)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("LoadKeySet: %v, warnings %v", err, warnings)
	}
	if ks.Len() != len(names) {
		t.Errorf("key set has %d keys, want %d", ks.Len(), len(names))
	}
}
