package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// ent is one archive entry for test tarballs.
type ent struct {
	name     string
	typ      byte
	mode     int64
	body     string
	linkname string
	size     int64 // header size override for regular files when > 0
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func exe(name, body string) ent  { return ent{name: name, typ: tar.TypeReg, mode: 0o755, body: body} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, linkname: to}
}
func hardlink(name, to string) ent {
	return ent{name: name, typ: tar.TypeLink, mode: 0o644, linkname: to}
}

// versionScript is a tiny "teleport" that prints its version like Teleport.
func versionScript(v string) string {
	return "#!/bin/sh\necho \"Teleport v" + v + " git:x go1.26\"\n"
}

// release returns the entries of a well-formed release tarball.
func release(v string, extra ...string) []ent {
	es := []ent{
		dir("bin/"),
		exe("bin/teleport", versionScript(v)),
		exe("bin/tctl", "#!/bin/sh\n"),
	}
	for _, name := range extra {
		es = append(es, exe("bin/"+name, "#!/bin/sh\n"))
	}
	return append(es, file("lib/systemd/system/teleport.service", "[Service]\n"))
}

// tarBytes builds an uncompressed tar of es.
func tarBytes(t testing.TB, es []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.linkname, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
			if e.size > 0 {
				h.Size = e.size
			}
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg && e.size == 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatalf("tar body %s: %v", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("close tar: %v", err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeTarball writes data as a tarball file and returns its path and SHA-256.
func writeTarball(t testing.TB, data []byte) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "teleport-bin.tar.gz")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return p, hex.EncodeToString(sum[:])
}

// makeTarball builds a gzip-compressed tarball of es.
func makeTarball(t testing.TB, es []ent) (string, string) {
	t.Helper()
	return writeTarball(t, gzipBytes(t, tarBytes(t, es)))
}

// testLimits keeps the free-space reserve small so tests run anywhere.
var testLimits = Limits{MaxTotalSize: 64 << 20, ReserveBytes: 1}

// install extracts a good release of v into tr.
func install(t *testing.T, tr *Tree, v string, extra ...string) {
	t.Helper()
	p, sum := makeTarball(t, release(v, extra...))
	if err := tr.Extract(t.Context(), p, v, sum, testLimits); err != nil {
		t.Fatalf("Extract(%s): %v", v, err)
	}
}

// snapshot describes every path under dir: type, mode, link target or
// content, so two snapshots compare a tree exactly.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fi.Mode().String() + " " + string(b)
		default:
			out[rel] = fi.Mode().String()
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
