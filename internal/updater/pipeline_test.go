package updater

// Attacks on the pipelined install: the release is unpacked into staging
// while it streams in, before its hash is known. These tests serve a
// genuine signed checksum with other bytes behind it and check that
// nothing outside staging ever changes, that staging goes, and that a
// hostile stream is cut off where it turns hostile.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/tmpfs"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// padding is the incompressible tail of the releases below: large enough
// that the unpacker, when it refuses an entry before it, provably stops
// the download long before the end.
const padding = 16 << 20

// bigRelease is a release of version in Teleport's layout whose tsh is
// padding random bytes, so it streams for a while after its first files.
func bigRelease(t *testing.T, version string, broken bool) []byte {
	t.Helper()
	tsh := make([]byte, padding)
	rand.Read(tsh)
	data, err := fixture.Tarball(map[string][]byte{
		"teleport/teleport": []byte(releasetest.Script(version, broken)),
		"teleport/tctl":     []byte("#!/bin/sh\necho tctl\n"),
		"teleport/tsh":      tsh,
		"teleport/examples/systemd/teleport.service": []byte(releasetest.ExampleUnit),
		"teleport/VERSION":                           []byte(version + "\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// hostileTarball packs entry first, then padding random bytes in four
// files: a stream that turns hostile at once and goes on for long after.
func hostileTarball(t *testing.T, entry tar.Header, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	write := func(h tar.Header, b []byte) {
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	write(entry, body)
	for i := range 4 {
		b := make([]byte, padding/4)
		rand.Read(b)
		write(tar.Header{Name: "bin/pad" + string(rune('a'+i)), Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(b))}, b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	return buf.Bytes()
}

// serveInstead publishes genuine as version 2.0.0 (its checksum signed)
// and then serves served under the tarball's name: a CDN that swapped the
// tarball but cannot sign.
func serveInstead(e *testEnv, genuine, served []byte) download.Artifact {
	e.t.Helper()
	a := e.artifact("2.0.0")
	if err := e.cdn.Publish(e.key, e.dir, a.TarballName(), genuine); err != nil {
		e.t.Fatal(err)
	}
	e.cdn.Put(a.TarballName(), served)
	return a
}

// watch records the steps u reaches and the most bytes its download
// handed to the unpacker.
type watch struct {
	steps []Step
	bytes atomic.Int64
}

func watchUpdater(u *Updater) *watch {
	w := &watch{}
	u.AfterStep = func(s Step) { w.steps = append(w.steps, s) }
	u.Progress = func(done, _ int64) { w.bytes.Store(max(w.bytes.Load(), done)) }
	return w
}

// checkStoppedEarly checks that the download of a tarball of size bytes
// stopped before its second half: the refusal came while it streamed.
func (w *watch) checkStoppedEarly(t *testing.T, size int) {
	t.Helper()
	if got := w.bytes.Load(); got > int64(size)/2 {
		t.Errorf("the download went on to byte %d of %d after the refusal", got, size)
	}
}

// checkUntouched: 1.0.0 is still the active, linked version; 2.0.0 has no
// directory (so no .verified) and is not skip-listed; staging is empty.
func checkUntouched(t *testing.T, e *testEnv) {
	t.Helper()
	cfg := e.config()
	if cfg.Status.Active != "1.0.0" || e.linked() != "1.0.0" || cfg.Status.IsSkipped("2.0.0") {
		t.Errorf("after the refused release: active %q, linked %q, skip %v", cfg.Status.Active, e.linked(), cfg.Status.Skip)
	}
	dir := install.New(e.root).VersionDir("2.0.0")
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("versions/2.0.0 exists after the refused release: %v", err)
	}
	if left := e.stagingLeft(); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}
}

// TestPipelinedTamperedTarballLeavesNothing: the CDN serves a well-formed,
// safe release in Teleport's layout that is not the signed one. It is
// unpacked into staging while it streams in (StepUnpack) and the mismatch
// shows only once the last byte arrived; then staging goes and nothing
// else was ever touched.
func TestPipelinedTamperedTarballLeavesNothing(t *testing.T) {
	e, u := installedHost(t, nil)
	w := watchUpdater(u)
	serveInstead(e, bigRelease(t, "2.0.0", false), bigRelease(t, "2.0.0", true))
	e.setTarget("2.0.0", true, 0)

	_, err := u.Update(context.Background(), false)
	if !errors.Is(err, download.ErrChecksumMismatch) {
		t.Fatalf("update with a tampered tarball = %v, want ErrChecksumMismatch", err)
	}
	if !slices.Contains(w.steps, StepUnpack) || slices.Contains(w.steps, StepDownload) {
		t.Errorf("steps %v: want the release unpacked into staging and never verified", w.steps)
	}
	if w.bytes.Load() < padding {
		t.Errorf("the download stopped after %d bytes; the mismatch must be found only at the end", w.bytes.Load())
	}
	checkUntouched(t, e)
	if lu := e.config().Status.LastUpdate; lu == nil || lu.ErrorCode != CodeVerification {
		t.Errorf("last_update: %+v, want error code %s", lu, CodeVerification)
	}
}

// TestPipelinedHostileTarballStopsMidStream: a tarball that turns hostile
// in its first entry (an escape, a device, a file over the size cap) is
// refused while it streams, before its hash is known: the download stops
// right there, staging goes and nothing lands anywhere else.
func TestPipelinedHostileTarballStopsMidStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry tar.Header
		body  []byte
	}{
		{"dotdot", tar.Header{Name: "bin/../../evil", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5}, []byte("evil\n")},
		{"absolute", tar.Header{Name: "/tmp/evil", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5}, []byte("evil\n")},
		{"symlink-out", tar.Header{Name: "bin/evil", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../evil"}, nil},
		{"teleport-layout-escape", tar.Header{Name: "teleport/../evil", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5}, []byte("evil\n")},
		{"device", tar.Header{Name: "bin/evil", Typeflag: tar.TypeChar, Mode: 0o600, Devmajor: 1, Devminor: 3}, nil},
		{"fifo", tar.Header{Name: "bin/evil", Typeflag: tar.TypeFifo, Mode: 0o600}, nil},
		{"oversize", tar.Header{Name: "bin/evil", Typeflag: tar.TypeReg, Mode: 0o755, Size: 2 << 20}, make([]byte, 2<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, u := installedHost(t, nil)
			u.Limits.MaxFileSize = 1 << 20
			u.Limits.MaxTotalSize = 2 * padding
			w := watchUpdater(u)
			served := hostileTarball(t, tc.entry, tc.body)
			serveInstead(e, bigRelease(t, "2.0.0", false), served)
			e.setTarget("2.0.0", true, 0)

			_, err := u.Update(context.Background(), false)
			if !errors.Is(err, install.ErrUnsafeArchive) || !strings.Contains(err.Error(), "evil") {
				t.Fatalf("update with a hostile tarball = %v, want ErrUnsafeArchive naming the entry", err)
			}
			w.checkStoppedEarly(t, len(served))
			checkUntouched(t, e)
			checkNoEvil(t, filepath.Dir(e.root))
		})
	}
}

// checkNoEvil fails when a file named evil exists anywhere under dir.
func checkNoEvil(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "evil" {
			t.Errorf("hostile entry written to %s", p)
		}
		return nil
	})
}

// TestPipelinedTruncatedStream: a transfer cut in the middle, from a
// server that cannot resume, fails as a download error after the
// unpacker started; staging goes, and the next run (a server that can
// resume) resumes the stream into the unpacker and installs the release.
func TestPipelinedTruncatedStream(t *testing.T) {
	e, u := installedHost(t, nil)
	w := watchUpdater(u)
	data := bigRelease(t, "2.0.0", false)
	a := serveInstead(e, data, data)
	e.cdn.SetRanges(false)
	e.cdn.CutOnce(a.TarballName(), int64(len(data))*3/4)
	e.setTarget("2.0.0", true, 0)

	_, err := u.Update(context.Background(), false)
	// The unpacker sees its stream end early too; the error is the
	// transfer's, not a corrupt archive's.
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, install.ErrUnsafeArchive) {
		t.Fatalf("update over a cut transfer = %v, want the transfer's unexpected EOF", err)
	}
	if !slices.Contains(w.steps, StepUnpack) {
		t.Errorf("steps %v: the cut must come after the unpacker started", w.steps)
	}
	checkUntouched(t, e)

	e.cdn.SetRanges(true)
	e.cdn.CutOnce(a.TarballName(), int64(len(data))/2)
	if res, err := u.Update(context.Background(), false); err != nil || res.Outcome != OutcomeUpdated {
		t.Fatalf("update with a resumable cut: %v %v", res, err)
	}
	if e.linked() != "2.0.0" || e.cdn.Hits(a.TarballName()) != 3 {
		t.Errorf("linked %q after %d requests of the tarball, want 2.0.0 after a cut, a cut and a resume", e.linked(), e.cdn.Hits(a.TarballName()))
	}
	if left := e.stagingLeft(); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}
}

// TestPipelinedNoSpaceMidStream: free space is checked before each file
// the stream unpacks (its size plus the reserve), not only against an
// estimate made before the download: a release that outgrows the staging
// filesystem is refused at that file, the download stops there and staging
// goes.
func TestPipelinedNoSpaceMidStream(t *testing.T) {
	e, u := installedHost(t, nil)
	staging := install.New(e.root).StagingDir()
	if err := os.MkdirAll(staging, 0o700); err != nil {
		t.Fatal(err)
	}
	tmpfs.MountAt(t, staging, padding)
	// The download's own check (the tarball's size before it is
	// requested) is off, so the unpacker's is the one that refuses.
	u.HTTP = download.New(download.Options{HTTPClient: e.cdn.Server.Client(), ReserveBytes: -1})
	u.Limits.ReserveBytes = 4 << 20
	w := watchUpdater(u)
	data := bigRelease(t, "2.0.0", false)
	serveInstead(e, data, data)
	e.setTarget("2.0.0", true, 0)

	_, err := u.Update(context.Background(), false)
	if !errors.Is(err, install.ErrNoSpace) || !strings.Contains(err.Error(), "to unpack bin/tsh") {
		t.Fatalf("update onto a full staging filesystem = %v, want ErrNoSpace before bin/tsh", err)
	}
	w.checkStoppedEarly(t, len(data))
	checkUntouched(t, e)
}
