package install

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExtractRefuses(t *testing.T) {
	t.Parallel()
	good := release("1.2.3")
	with := func(es ...ent) []ent { return append(append([]ent{}, good...), es...) }
	tests := []struct {
		name    string
		data    func(t *testing.T) []byte // nil: gzip(tar(entries))
		entries []ent
		lim     Limits
		sum     string // "" means the tarball's real checksum
		wantErr error
		wantMsg string
	}{
		{name: "absolute path", entries: with(file("/etc/evil", "x")), wantErr: ErrUnsafeArchive, wantMsg: "absolute path"},
		{name: "dot dot", entries: with(file("../evil", "x")), wantErr: ErrUnsafeArchive, wantMsg: `"../evil"`},
		{name: "dot dot inside", entries: with(file("bin/../../evil", "x")), wantErr: ErrUnsafeArchive, wantMsg: `".."`},
		{name: "dot dot staying inside", entries: with(file("bin/../lib/x", "x")), wantErr: ErrUnsafeArchive, wantMsg: `".."`},
		{name: "non-canonical path", entries: with(file("bin//x", "x")), wantErr: ErrUnsafeArchive, wantMsg: "not canonical"},
		{name: "symlink absolute", entries: with(symlink("bin/sh", "/bin/sh")), wantErr: ErrUnsafeArchive, wantMsg: "absolute"},
		{name: "symlink outside", entries: with(symlink("bin/etc", "../../etc")), wantErr: ErrUnsafeArchive, wantMsg: `"bin/etc"`},
		{name: "symlink to parent of root", entries: with(symlink("up", "..")), wantErr: ErrUnsafeArchive, wantMsg: "outside"},
		{name: "symlink chain escape", entries: with(symlink("a", "."), symlink("b", "a/..")), wantErr: ErrUnsafeArchive, wantMsg: "resolves outside"},
		{name: "symlink chain escape deep", entries: with(dir("d/"), symlink("d/up", ".."), symlink("d/x", "up/../etc")), wantErr: ErrUnsafeArchive, wantMsg: "resolves outside"},
		{name: "symlink loop", entries: with(symlink("l1", "l2"), symlink("l2", "l1/x")), wantErr: ErrUnsafeArchive, wantMsg: "too many levels"},
		{name: "write through symlink", entries: with(symlink("lib2", "bin"), file("lib2/x", "x")), wantErr: ErrUnsafeArchive, wantMsg: "not a directory"},
		{name: "hardlink outside", entries: with(hardlink("bin/passwd", "../etc/passwd")), wantErr: ErrUnsafeArchive, wantMsg: "hard link"},
		{name: "hardlink absolute", entries: with(hardlink("bin/passwd", "/etc/passwd")), wantErr: ErrUnsafeArchive, wantMsg: "hard link"},
		{name: "hardlink to missing", entries: with(hardlink("bin/x", "bin/nothing")), wantErr: ErrUnsafeArchive, wantMsg: "not a regular file"},
		{name: "hardlink to symlink", entries: with(symlink("bin/s", "teleport"), hardlink("bin/x", "bin/s")), wantErr: ErrUnsafeArchive, wantMsg: "not a regular file"},
		{name: "char device", entries: with(ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666}), wantErr: ErrUnsafeArchive, wantMsg: "device"},
		{name: "block device", entries: with(ent{name: "dev/sda", typ: tar.TypeBlock, mode: 0o666}), wantErr: ErrUnsafeArchive, wantMsg: "device"},
		{name: "fifo", entries: with(ent{name: "bin/fifo", typ: tar.TypeFifo, mode: 0o666}), wantErr: ErrUnsafeArchive, wantMsg: "FIFO"},
		{name: "file over limit", entries: with(file("bin/big", strings.Repeat("x", 101))), lim: Limits{MaxFileSize: 100, ReserveBytes: 1}, wantErr: ErrUnsafeArchive, wantMsg: `"bin/big": size 101 exceeds`},
		{name: "total over limit", entries: with(file("a", strings.Repeat("x", 60)), file("b", strings.Repeat("x", 60))), lim: Limits{MaxTotalSize: 100 + int64(len(versionScript("1.2.3"))) + 10 + 10, ReserveBytes: 1}, wantErr: ErrUnsafeArchive, wantMsg: "total unpacked size"},
		{name: "too many entries", entries: with(file("a", ""), file("b", "")), lim: Limits{MaxEntries: len(good) + 1, ReserveBytes: 1}, wantErr: ErrUnsafeArchive, wantMsg: "more than"},
		{name: "duplicate file", entries: with(file("bin/tctl", "again")), wantErr: ErrUnsafeArchive, wantMsg: "duplicate"},
		{name: "file over directory", entries: with(file("bin", "x")), wantErr: ErrUnsafeArchive, wantMsg: "duplicate"},
		{name: "reserved marker", entries: with(file(".verified", "0000")), wantErr: ErrUnsafeArchive, wantMsg: "reserved"},
		{name: "no bin/teleport", entries: []ent{exe("bin/tctl", "x")}, wantErr: ErrUnsafeArchive, wantMsg: "bin/teleport"},
		{name: "bin/teleport not executable", entries: []ent{file("bin/teleport", "x")}, wantErr: ErrUnsafeArchive, wantMsg: "bin/teleport"},
		{name: "bin/teleport a symlink", entries: []ent{exe("bin/real", "x"), symlink("bin/teleport", "real")}, wantErr: ErrUnsafeArchive, wantMsg: "bin/teleport"},
		{name: "not gzip", data: func(t *testing.T) []byte { return tarBytes(t, good) }, wantErr: ErrUnsafeArchive, wantMsg: "not gzip"},
		{name: "truncated", data: func(t *testing.T) []byte {
			b := gzipBytes(t, tarBytes(t, with(file("bin/big", strings.Repeat("y", 4096)))))
			return b[:len(b)/2]
		}, wantErr: ErrUnsafeArchive},
		{name: "truncated file data", data: func(t *testing.T) []byte {
			b := tarBytes(t, with(file("bin/z", strings.Repeat("z", 8192))))
			return gzipBytes(t, b[:len(b)-1024-4096]) // no end blocks, half the data
		}, wantErr: ErrUnsafeArchive, wantMsg: "bin/z"},
		{name: "checksum mismatch", entries: good, sum: strings.Repeat("0", 64), wantErr: ErrWrongTarball},
		{name: "checksum mismatch of an unsafe archive", entries: with(file("../evil", "x")), sum: strings.Repeat("0", 64), wantErr: ErrWrongTarball, wantMsg: "../evil"},
		{name: "no space", entries: good, lim: Limits{ReserveBytes: 1 << 62}, wantErr: ErrNoSpace, wantMsg: "reserve"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			root := filepath.Join(base, "root")
			outside := filepath.Join(base, "etc")
			if err := os.MkdirAll(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			var data []byte
			if tc.data != nil {
				data = tc.data(t)
			} else {
				data = gzipBytes(t, tarBytes(t, tc.entries))
			}
			p, sum := writeTarball(t, data)
			if tc.sum != "" {
				sum = tc.sum
			}
			lim := tc.lim
			if lim == (Limits{}) {
				lim = testLimits
			}
			tr := New(root)
			err := tr.Extract(t.Context(), p, "1.2.3", sum, lim)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Extract() error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Extract() error = %q, want it to mention %q", err, tc.wantMsg)
			}
			if _, err := os.Lstat(tr.VersionDir("1.2.3")); !os.IsNotExist(err) {
				t.Errorf("version dir exists after refusal (err %v)", err)
			}
			if left := snapshot(t, tr.StagingDir()); len(left) > 1 {
				t.Errorf("staging not cleaned: %v", sortedKeys(left))
			}
			if got := snapshot(t, base); len(got) != 2+len(snapshot(t, root)) {
				// base holds only "root" and the empty "etc" (and what is under root).
				t.Errorf("something was written outside the root: %v", sortedKeys(got))
			}
			if left := snapshot(t, outside); len(left) != 1 {
				t.Errorf("outside dir changed: %v", sortedKeys(left))
			}
		})
	}
}

func TestExtractGood(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []ent
		want    map[string]string // rel path -> snapshot value
	}{
		{
			name: "plain",
			entries: []ent{
				exe("bin/teleport", "T"),
				{name: "bin/tctl", typ: tar.TypeReg, mode: 0o6775, body: "C"}, // setuid, setgid, group-writable
				{name: "lib/systemd/system/teleport.service", typ: tar.TypeReg, mode: 0o666, body: "U"},
			},
			want: map[string]string{
				"bin/teleport":                        "-rwxr-xr-x T",
				"bin/tctl":                            "-rwxr-xr-x C",
				"lib":                                 "drwxr-xr-x",
				"lib/systemd/system/teleport.service": "-rw-r--r-- U",
				".verified":                           "",
			},
		},
		{
			name: "leading dot slash, links, pax header",
			entries: []ent{
				{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
				dir("./"),
				dir("./bin/"),
				exe("./bin/teleport", "T"),
				symlink("./bin/tsh", "teleport"),
				hardlink("./bin/tbot", "./bin/teleport"),
				dir("./share/"),
				symlink("./share/up", "../bin/teleport"),
			},
			want: map[string]string{
				"bin/teleport": "-rwxr-xr-x T",
				"bin/tsh":      "link teleport",
				"bin/tbot":     "-rwxr-xr-x T",
				"share/up":     "link ../bin/teleport",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := New(t.TempDir())
			es := tc.entries
			if es[0].typ == tar.TypeXGlobalHeader {
				es = es[1:]
			}
			data := tarBytes(t, es)
			if tc.entries[0].typ == tar.TypeXGlobalHeader {
				data = withGlobalHeader(t, es)
			}
			p, sum := writeTarball(t, gzipBytes(t, data))
			if err := tr.Extract(t.Context(), p, "1.2.3", sum, testLimits); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			got := snapshot(t, tr.VersionDir("1.2.3"))
			tc.want[".verified"] = "-rw-r--r-- " + sum + "\n"
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if got["."] != "drwxr-xr-x" {
				t.Errorf("version dir mode = %q, want drwxr-xr-x", got["."])
			}
			gotSum, ok, err := tr.Installed("1.2.3")
			if err != nil || !ok || gotSum != sum {
				t.Errorf("Installed = %q, %v, %v; want %q, true, nil", gotSum, ok, err, sum)
			}
			if left, _ := os.ReadDir(tr.StagingDir()); len(left) != 0 {
				t.Errorf("staging left behind: %v", left)
			}
		})
	}
}

// withGlobalHeader writes a tar that starts with a pax global header, as
// `git archive` does.
func withGlobalHeader(t *testing.T, es []ent) []byte {
	t.Helper()
	var buf strings.Builder
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
		PAXRecords: map[string]string{"comment": "abc"}, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	return append([]byte(buf.String()), tarBytes(t, es)...)
}

func TestExtractAgain(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	p, sum := makeTarball(t, release("1.2.3"))
	if err := tr.Extract(t.Context(), p, "1.2.3", sum, testLimits); err != nil {
		t.Fatal(err)
	}
	// A file added after the first extraction proves the second one does
	// not touch the directory.
	mark := filepath.Join(tr.VersionDir("1.2.3"), "mark")
	if err := os.WriteFile(mark, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tr.Extract(t.Context(), p, "1.2.3", sum, testLimits); err != nil {
		t.Fatalf("second Extract: %v", err)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("second Extract replaced the complete version: %v", err)
	}

	// The same version from a different tarball is refused.
	p2, sum2 := makeTarball(t, release("1.2.3", "extra"))
	if err := tr.Extract(t.Context(), p2, "1.2.3", sum2, testLimits); !errors.Is(err, ErrWrongTarball) {
		t.Errorf("Extract of a different tarball: %v, want ErrWrongTarball", err)
	}
}

func TestExtractReplacesIncomplete(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	junk := filepath.Join(tr.VersionDir("1.2.3"), "bin", "junk")
	if err := os.MkdirAll(filepath.Dir(junk), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("half"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := tr.Installed("1.2.3"); ok {
		t.Fatal("incomplete dir reported installed")
	}
	install(t, tr, "1.2.3")
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Errorf("leftover of incomplete version survived: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tr.VersionDir("1.2.3"), "bin", "teleport")); err != nil {
		t.Error(err)
	}
}

func TestExtractCanceled(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	p, sum := makeTarball(t, release("1.2.3"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := tr.Extract(ctx, p, "1.2.3", sum, testLimits); !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract with canceled ctx: %v", err)
	}
	if _, err := os.Lstat(tr.VersionDir("1.2.3")); !os.IsNotExist(err) {
		t.Errorf("version dir exists: %v", err)
	}
}

func TestExtractBadArguments(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	p, sum := makeTarball(t, release("1.2.3"))
	for _, v := range []string{"", "v1.2.3", "../1.2.3", "1.2", "1.2.3/..", ".", strings.Repeat("1", 200) + ".0.0"} {
		if err := tr.Extract(t.Context(), p, v, sum, testLimits); !errors.Is(err, ErrInvalidVersion) {
			t.Errorf("Extract(version %q) = %v, want ErrInvalidVersion", v, err)
		}
	}
	if err := tr.Extract(t.Context(), p, "1.2.3", strings.ToUpper(sum), testLimits); err == nil {
		t.Error("Extract with upper-case checksum succeeded")
	}
}

func TestCleanLeftovers(t *testing.T) {
	t.Parallel()
	tr := New(t.TempDir())
	install(t, tr, "1.0.0")
	install(t, tr, "2.0.0")
	if _, err := tr.Link("1.0.0", false); err != nil {
		t.Fatal(err)
	}
	// 2.0.0 loses its marker (killed after the rename), 3.0.0 is a
	// half-written directory, and 1.0.0 is linked so it stays even if its
	// marker goes.
	for _, p := range []string{
		filepath.Join(tr.VersionDir("1.0.0"), verifiedName),
		filepath.Join(tr.VersionDir("2.0.0"), verifiedName),
	} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(tr.VersionDir("3.0.0"), "bin", "teleport"), "half")
	st, err := tr.NewStaging()
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(st, "bin", "teleport"), "half")
	tmpState := filepath.Join(tr.DataDir(), ".update.yaml"+tmpMarker+"-123")
	mustWrite(t, tmpState, "x")
	tmpLink := tmpSibling(filepath.Join(tr.BinDir(), "tctl"), "link")
	if err := os.Symlink("x", tmpLink); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(tr.BinDir(), ".hidden")
	mustWrite(t, foreign, "keep")

	removed, err := tr.CleanLeftovers()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{st, tr.VersionDir("2.0.0"), tr.VersionDir("3.0.0"), tmpState, tmpLink}
	if strings.Join(removed, "\n") != strings.Join(want, "\n") {
		t.Errorf("removed:\n%s\nwant:\n%s", strings.Join(removed, "\n"), strings.Join(want, "\n"))
	}
	if _, err := os.Stat(filepath.Join(tr.VersionDir("1.0.0"), "bin", "teleport")); err != nil {
		t.Errorf("linked version removed: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("foreign hidden file removed: %v", err)
	}
	if removed, err := tr.CleanLeftovers(); err != nil || len(removed) != 0 {
		t.Errorf("second CleanLeftovers = %v, %v; want nothing", removed, err)
	}
}

func mustWrite(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}
