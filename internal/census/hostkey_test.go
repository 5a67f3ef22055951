package census

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/safeperm"
)

func TestLoadOrCreateHostKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.key")
	key, err := LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("host key mode %#o, want 0600", fi.Mode().Perm())
	}
	again, err := LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, again) {
		t.Error("the second call made a new key instead of loading the stored one")
	}
}

func TestLoadHostKeyRefuses(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, path string)
		want   string
		unsafe bool
	}{
		{"readable by others", func(t *testing.T, path string) { chmodOrFail(t, path, 0o644) }, "readable by others", true},
		{"group-writable", func(t *testing.T, path string) { chmodOrFail(t, path, 0o620) }, "group/world-writable", true},
		{"a symlink", func(t *testing.T, path string) {
			target := path + ".real"
			if err := os.Rename(path, target); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink", true},
		{"not PEM", func(t *testing.T, path string) { writeOrFail(t, path, "garbage") }, "want one PEM", false},
		{"trailing data", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			writeOrFail(t, path, string(data)+"x")
		}, "want one PEM", false},
		{"an RSA-sized blob", func(t *testing.T, path string) {
			writeOrFail(t, path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}, "host key", false},
		{"too large", func(t *testing.T, path string) { writeOrFail(t, path, strings.Repeat("x", maxHostKeyFile+1)) }, "larger than", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "host.key")
			if _, err := LoadOrCreateHostKey(path); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, path)
			_, err := LoadOrCreateHostKey(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadOrCreateHostKey = %v, want an error containing %q", err, tt.want)
			}
			if tt.unsafe != errors.Is(err, safeperm.ErrUnsafe) {
				t.Errorf("errors.Is(%v, safeperm.ErrUnsafe) = %v, want %v", err, !tt.unsafe, tt.unsafe)
			}
		})
	}
}

func chmodOrFail(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func writeOrFail(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
