package download

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/diskspace"
	"github.com/gravitational/teleport-update/internal/updater/verify"
	"golang.org/x/sys/unix"
)

// Sizes for the tests that measure how much a server sent: socket buffers
// are kept small on both ends, so what the server managed to write is what
// the client asked for plus little more than the pipeline's buffers.
const (
	bigBody     = 64 << 20
	sockBuf     = 64 << 10
	sentAtMost  = 8 << 20 // far below bigBody, far above buffers in flight
	failAfter   = 1 << 20
	chunkToSend = 64 << 10
)

// meteredServer serves bigBody bytes on every GET over real TLS, with a
// small send buffer, and reports on sent how many bytes each response got
// out before it ended. HEAD is answered 405 unless head is set.
type meteredServer struct {
	srv  *httptest.Server
	sent chan int64
}

func newMeteredServer(t *testing.T, contentLength, head bool) *meteredServer {
	t.Helper()
	m := &meteredServer{sent: make(chan int64, 16)}
	m.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && !head {
			http.Error(w, "no HEAD here", http.StatusMethodNotAllowed)
			return
		}
		if contentLength {
			w.Header().Set("Content-Length", strconv.Itoa(bigBody))
		}
		if r.Method == http.MethodHead {
			return
		}
		chunk := make([]byte, chunkToSend)
		var n int64
		for n < bigBody {
			k, err := w.Write(chunk)
			n += int64(k)
			if err != nil {
				break
			}
		}
		m.sent <- n
	}))
	m.srv.Listener = smallSendBuffer{m.srv.Listener}
	m.srv.StartTLS()
	t.Cleanup(m.srv.Close)
	return m
}

// client returns an HTTP client trusting the server, whose connections
// have a small receive buffer.
func (m *meteredServer) client() *http.Client {
	tr := m.srv.Client().Transport.(*http.Transport).Clone()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, sockBuf)
		})
		return errors.Join(err, serr)
	}}
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr}
}

type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(sockBuf)
	}
	return c, err
}

// failingFile is a real staging file whose writes fail with ENOSPC once
// left bytes were written, like a disk that fills up.
type failingFile struct {
	*os.File
	left   int64
	writes int
}

func (f *failingFile) Write(p []byte) (int, error) {
	f.writes++
	if int64(len(p)) > f.left {
		n, _ := f.File.Write(p[:f.left])
		f.left = 0
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.left -= int64(len(p))
	return f.File.Write(p)
}

// TestDownloadStopsAtFirstWriteError: once a write fails, no more of the
// body is fetched; the server measures it.
func TestDownloadStopsAtFirstWriteError(t *testing.T) {
	t.Parallel()
	m := newMeteredServer(t, true, false)
	f := &failingFile{File: stagingFile(t), left: failAfter}
	c := New(Options{HTTPClient: m.client(), ReserveBytes: -1})

	_, err := c.Download(t.Context(), m.srv.URL+"/big", f, bigBody, nil)
	if !errors.Is(err, diskspace.ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), f.Name()) {
		t.Fatalf("Download = %v, want ErrNoSpace naming %s", err, f.Name())
	}
	if f.writes != failAfter/copyBufferSize+1 {
		t.Errorf("%d writes, want %d: writing went on after the failure", f.writes, failAfter/copyBufferSize+1)
	}
	if sent := <-m.sent; sent > sentAtMost {
		t.Errorf("server sent %d bytes after a write failed at %d, want at most %d", sent, failAfter, sentAtMost)
	}
}

// TestDownloadRefusesWhatDoesNotFit: an announced size that does not fit
// with the reserve is refused before the body is read.
func TestDownloadRefusesWhatDoesNotFit(t *testing.T) {
	t.Parallel()
	m := newMeteredServer(t, true, false)
	f := stagingFile(t)
	c := New(Options{HTTPClient: m.client(), ReserveBytes: 1 << 60})

	_, err := c.Download(t.Context(), m.srv.URL+"/big", f, bigBody, nil)
	assertNoSpace(t, err, filepath.Dir(f.Name()), bigBody+1<<60)
	if sent := <-m.sent; sent > sentAtMost {
		t.Errorf("server sent %d bytes of a refused download, want at most %d", sent, sentAtMost)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 0 {
		t.Errorf("staging file holds %v bytes (%v), want none", fi.Size(), err)
	}
}

// TestFetchVerifiedRefusesBeforeRequest: when HEAD announces a tarball that
// does not fit, or that is over the cap, no GET for it is ever sent.
func TestFetchVerifiedRefusesBeforeRequest(t *testing.T) {
	t.Parallel()
	key, pub := newKey(t)
	a, err := NewArtifact(ProductTeleport, "16.4.6", "linux", "amd64")
	if err != nil {
		t.Fatal(err)
	}
	tarball := makeTarball(t, "16.4.6", 64<<10)
	tests := []struct {
		name    string
		reserve int64
		max     int64
		wantErr error
	}{
		{name: "no room", reserve: 1 << 60, wantErr: diskspace.ErrNoSpace},
		{name: "over the cap", reserve: -1, max: int64(len(tarball)) - 1, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCDN(t)
			publish(t, c, key, a, tarball)
			staging := t.TempDir()
			cl := New(Options{HTTPClient: c.Server.Client(), ReserveBytes: tt.reserve})
			_, err := cl.FetchVerified(t.Context(), c.URL(), a, verify.NewKeySet(pub), staging, tt.max, time.Now(), nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FetchVerified = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(tt.wantErr, diskspace.ErrNoSpace) {
				assertNoSpace(t, err, staging, int64(len(tarball))+tt.reserve)
			}
			gets, heads := c.Hits(a.TarballName()), c.Heads(a.TarballName())
			if gets != 0 || heads != 1 {
				t.Errorf("tarball got %d GET and %d HEAD requests, want 0 and 1", gets, heads)
			}
			assertEmpty(t, staging)
		})
	}
}

// TestFullTmpfs runs against a real filesystem that is too small: a
// download that announces its size is refused up front, and one that does
// not stops at the first ENOSPC.
func TestFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	t.Parallel()
	dir := smallTmpfs(t, 4<<20)
	t.Run("announced", func(t *testing.T) {
		m := newMeteredServer(t, true, false)
		f := stagingFileIn(t, dir)
		_, err := New(Options{HTTPClient: m.client(), ReserveBytes: 1}).Download(t.Context(), m.srv.URL+"/big", f, bigBody, nil)
		assertNoSpace(t, err, dir, bigBody+1)
		if sent := <-m.sent; sent > sentAtMost {
			t.Errorf("server sent %d bytes of a refused download, want at most %d", sent, sentAtMost)
		}
	})
	t.Run("unannounced", func(t *testing.T) {
		m := newMeteredServer(t, false, false)
		f := stagingFileIn(t, dir)
		_, err := New(Options{HTTPClient: m.client(), ReserveBytes: 1}).Download(t.Context(), m.srv.URL+"/big", f, bigBody, nil)
		if !errors.Is(err, diskspace.ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Download = %v, want ErrNoSpace from ENOSPC", err)
		}
		if sent := <-m.sent; sent > sentAtMost {
			t.Errorf("server sent %d bytes after the disk was full, want at most %d", sent, sentAtMost)
		}
	})
}

// smallTmpfs mounts a tmpfs of size bytes on a temporary directory for the
// test's lifetime.
func smallTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.Itoa(size)+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func assertNoSpace(t *testing.T, err error, dir string, need int64) {
	t.Helper()
	want := "on " + dir + ": need " + strconv.FormatInt(need, 10) + " bytes"
	if !errors.Is(err, diskspace.ErrNoSpace) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "available") {
		t.Fatalf("error = %v, want ErrNoSpace containing %q and the free bytes", err, want)
	}
}
