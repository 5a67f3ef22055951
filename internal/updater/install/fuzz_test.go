package install

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

// FuzzExtract feeds arbitrary bytes to Extract as a tarball (gzip-compressed
// first unless they already are gzip) and checks that nothing escapes the
// root and nothing panics: on success every path stays in the version
// directory and every symlink resolves inside it; on failure nothing is
// left behind.
func FuzzExtract(f *testing.F) {
	seeds := [][]ent{
		release("1.2.3"),
		append(release("1.2.3"), symlink("bin/tsh", "teleport"), hardlink("bin/tbot", "bin/teleport")),
		append(release("1.2.3"), file("../evil", "x")),
		append(release("1.2.3"), symlink("a", "."), symlink("b", "a/..")),
		append(release("1.2.3"), symlink("lib2", "../.."), file("lib2/x", "x")),
		append(release("1.2.3"), hardlink("x", "/etc/passwd")),
		teleportRelease("teleport"),
		append(teleportRelease("teleport-ent"), hardlink("teleport-ent/tsh2", "teleport-ent/tsh"), exe("bin/evil", "x")),
	}
	for _, es := range seeds {
		f.Add(tarBytes(f, es))
	}
	f.Add(gzipBytes(f, tarBytes(f, release("1.2.3"))))
	f.Add([]byte{0x1f, 0x8b})

	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		if !bytes.HasPrefix(data, gzipMagic) {
			data = gzipBytes(t, data)
		}
		base := t.TempDir()
		root := filepath.Join(base, "root")
		p := filepath.Join(base, "in.tar.gz")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		tr := New(root)
		err := tr.Extract(t.Context(), p, "1.2.3", hex.EncodeToString(sum[:]), Limits{
			MaxFileSize: 1 << 20, MaxTotalSize: 4 << 20, MaxEntries: 100, ReserveBytes: 1,
		})
		if err != nil && !errors.Is(err, ErrUnsafeArchive) {
			t.Fatalf("Extract: unexpected error kind: %v", err)
		}

		// Nothing outside root but the input.
		entries, _ := os.ReadDir(base)
		for _, e := range entries {
			if e.Name() != "root" && e.Name() != "in.tar.gz" {
				t.Fatalf("Extract wrote %s outside the root", e.Name())
			}
		}
		vdir := tr.VersionDir("1.2.3")
		if err != nil {
			if _, serr := os.Lstat(vdir); serr == nil {
				t.Fatalf("failed Extract (%v) left a version directory", err)
			}
			return
		}
		// Every symlink resolves inside the version directory.
		realVdir, _ := filepath.EvalSymlinks(vdir)
		werr := filepath.WalkDir(vdir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type()&fs.ModeSymlink == 0 {
				if fi, err := d.Info(); err == nil && fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|0o022) != 0 {
					t.Errorf("%s has mode %v", path, fi.Mode())
				}
				return nil
			}
			resolved, err := filepath.EvalSymlinks(path)
			if err != nil {
				return nil // dangling or a loop: it points nowhere
			}
			if resolved != realVdir && !strings.HasPrefix(resolved, realVdir+string(filepath.Separator)) {
				t.Errorf("symlink %s resolves outside the version directory to %s", path, resolved)
			}
			return nil
		})
		if werr != nil {
			t.Fatal(werr)
		}
	})
}
