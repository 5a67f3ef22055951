package download

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

// fileServer serves one file with knobs for the failures a CDN can produce.
type fileServer struct {
	data []byte
	etag string
	// ranges enables Range support (Accept-Ranges, 206 answers).
	ranges bool
	// ignoreRange answers 200 with the whole file even to range requests.
	ignoreRange bool
	// cutAt > 0 aborts the connection after that many body bytes, for the
	// first cuts requests.
	cutAt int64
	cuts  int

	mu       sync.Mutex
	requests []*http.Request
}

func (s *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Clone(context.Background()))
	cut := s.cutAt > 0 && s.cuts > 0
	if cut {
		s.cuts--
	}
	s.mu.Unlock()
	if s.etag != "" {
		w.Header().Set("ETag", s.etag)
	}
	if s.ranges {
		w.Header().Set("Accept-Ranges", "bytes")
	}
	if cut {
		w = &cuttingWriter{ResponseWriter: w, left: s.cutAt}
	}
	if !s.ranges || s.ignoreRange {
		r.Header.Del("Range")
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.data)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.data))
}

func (s *fileServer) reqs() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.requests...)
}

// cuttingWriter aborts the connection once left body bytes are written.
type cuttingWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cuttingWriter) Write(p []byte) (int, error) {
	if int64(len(p)) >= c.left {
		c.ResponseWriter.Write(p[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	c.left -= int64(len(p))
	return c.ResponseWriter.Write(p)
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newTLS(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func stagingFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "x.unverified"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestDownload(t *testing.T) {
	t.Parallel()
	data := randomBytes(t, 3<<20+17)
	tests := []struct {
		name        string
		srv         *fileServer
		max         int64
		wantErr     error
		wantResumed int
		// wantRange lists the Range header of each request.
		wantRange []string
		wantIfRng string
	}{
		{name: "plain", srv: &fileServer{data: data}, wantRange: []string{""}},
		{name: "with range support", srv: &fileServer{data: data, ranges: true}, wantRange: []string{""}},
		{
			name:      "truncated without range support",
			srv:       &fileServer{data: data, cutAt: 1 << 20, cuts: 1},
			wantErr:   io.ErrUnexpectedEOF,
			wantRange: []string{""},
		},
		{
			name:        "truncated with range support resumes",
			srv:         &fileServer{data: data, ranges: true, etag: `"v1"`, cutAt: 1 << 20, cuts: 1},
			wantResumed: 1,
			wantRange:   []string{"", "bytes=1048576-"},
			wantIfRng:   `"v1"`,
		},
		{
			name:        "truncated three times resumes three times",
			srv:         &fileServer{data: data, ranges: true, cutAt: 1 << 20, cuts: 3},
			wantResumed: 3,
			wantRange:   []string{"", "bytes=1048576-", "bytes=2097152-", "bytes=3145728-"},
		},
		{
			name:        "truncated four times gives up",
			srv:         &fileServer{data: data, ranges: true, cutAt: 1 << 19, cuts: 4},
			wantErr:     io.ErrUnexpectedEOF,
			wantResumed: 3,
			wantRange:   []string{"", "bytes=524288-", "bytes=1048576-", "bytes=1572864-"},
		},
		{
			name:        "server ignoring the range restarts from zero",
			srv:         &fileServer{data: data, ranges: true, ignoreRange: true, cutAt: 1 << 20, cuts: 1},
			wantResumed: 1,
			wantRange:   []string{"", "bytes=1048576-"},
		},
		{
			name:      "content-length above the cap fails before reading",
			srv:       &fileServer{data: data},
			max:       1 << 20,
			wantErr:   ErrTooLarge,
			wantRange: []string{""},
		},
		{
			name:      "404",
			srv:       nil,
			wantErr:   &HTTPStatusError{Code: 404},
			wantRange: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h http.Handler = tt.srv
			if tt.srv == nil {
				h = http.NotFoundHandler()
			}
			srv := newTLS(t, h)
			c := New(Options{HTTPClient: srv.Client()})
			f := stagingFile(t)
			max := tt.max
			if max == 0 {
				max = 1 << 30
			}
			var lastDone int64
			res, err := c.Download(t.Context(), srv.URL+"/f.tar.gz", f, max, func(done, total int64) {
				if done < lastDone && done != 0 {
					// Only a restart may move progress backwards.
					if tt.srv == nil || !tt.srv.ignoreRange {
						t.Errorf("progress went back from %d to %d", lastDone, done)
					}
				}
				lastDone = done
			})
			if tt.srv != nil {
				var got []string
				for _, r := range tt.srv.reqs() {
					got = append(got, r.Header.Get("Range"))
					if r.Header.Get("Range") != "" && r.Header.Get("If-Range") != tt.wantIfRng {
						t.Errorf("If-Range = %q, want %q", r.Header.Get("If-Range"), tt.wantIfRng)
					}
				}
				if strings.Join(got, "|") != strings.Join(tt.wantRange, "|") {
					t.Errorf("Range headers = %q, want %q", got, tt.wantRange)
				}
			}
			if res.Resumed != tt.wantResumed {
				t.Errorf("Resumed = %d, want %d", res.Resumed, tt.wantResumed)
			}
			var wantStatus *HTTPStatusError
			if errors.As(tt.wantErr, &wantStatus) {
				var got *HTTPStatusError
				if !errors.As(err, &got) || got.Code != wantStatus.Code {
					t.Fatalf("Download error = %v, want HTTP status %d", err, wantStatus.Code)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Download error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), srv.URL) {
					t.Errorf("error %q does not name the URL", err)
				}
				return
			}
			if res.SHA256 != sha256Hex(data) || res.Size != int64(len(data)) {
				t.Errorf("Result = %+v, want sha %s size %d", res, sha256Hex(data), len(data))
			}
			got, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("file content differs from the served data (len %d vs %d)", len(got), len(data))
			}
			if lastDone != int64(len(data)) {
				t.Errorf("last progress = %d, want %d", lastDone, len(data))
			}
		})
	}
}

// endless writes random data until the client goes away.
func endless(chunked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !chunked {
			w.Header().Set("Content-Length", strconv.Itoa(1<<40))
		}
		buf := make([]byte, 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}
}

// trickle writes one byte every interval, n bytes in all, or until the
// client goes away. Finite, so a broken watchdog fails a test, not hangs it.
func trickle(interval time.Duration, n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for range n {
			w.Write([]byte{'x'})
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(interval):
			}
		}
	}
}

// hang sends headers (or not) and then nothing until the client goes away
// or, so that a broken watchdog fails a test instead of hanging it, 5 s.
func hang(headers bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if headers {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
}

func redirectTo(target func() string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target(), http.StatusFound)
	}
}

// TestFetchFailures covers the refusals shared by Fetch and Download, each
// through both entry points.
func TestFetchFailures(t *testing.T) {
	t.Parallel()
	var other, plain, self *httptest.Server
	other = newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "elsewhere") }))
	var plainHits atomic.Int32
	plain = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		io.WriteString(w, "plain")
	}))
	t.Cleanup(plain.Close)

	mux := http.NewServeMux()
	mux.Handle("/ok", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	mux.Handle("/404", http.NotFoundHandler())
	mux.Handle("/500", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }))
	mux.Handle("/endless", endless(true))
	mux.Handle("/endless-cl", endless(false))
	mux.Handle("/trickle", trickle(20*time.Millisecond, 200))
	mux.Handle("/stall-body", hang(true))
	mux.Handle("/stall-headers", hang(false))
	mux.Handle("/to-other", redirectTo(func() string { return other.URL + "/x" }))
	mux.Handle("/to-http", redirectTo(func() string { return plain.URL + "/x" }))
	mux.Handle("/hop1", redirectTo(func() string { return self.URL + "/hop2" }))
	mux.Handle("/hop2", redirectTo(func() string { return self.URL + "/hop3" }))
	mux.Handle("/hop3", redirectTo(func() string { return self.URL + "/ok" }))
	mux.Handle("/loop", redirectTo(func() string { return self.URL + "/loop" }))
	self = newTLS(t, mux)

	tests := []struct {
		name    string
		url     string
		opts    Options
		wantErr []error
		want    string
	}{
		{name: "ok", url: self.URL + "/ok", want: "hello"},
		{name: "same-host redirects within the limit", url: self.URL + "/hop1", want: "hello"},
		{name: "404", url: self.URL + "/404", wantErr: []error{&HTTPStatusError{Code: 404}}},
		{name: "500", url: self.URL + "/500", wantErr: []error{&HTTPStatusError{Code: 500}}},
		{name: "endless chunked body", url: self.URL + "/endless", wantErr: []error{ErrTooLarge}},
		{name: "huge content-length", url: self.URL + "/endless-cl", wantErr: []error{ErrTooLarge}},
		{
			name:    "one byte per tick",
			url:     self.URL + "/trickle",
			opts:    Options{MinRate: 1024, RateWindow: 100 * time.Millisecond, StallTimeout: time.Minute},
			wantErr: []error{ErrTooSlow},
		},
		{
			name:    "stall in the body",
			url:     self.URL + "/stall-body",
			opts:    Options{StallTimeout: 100 * time.Millisecond, MinRate: -1},
			wantErr: []error{ErrStalled},
		},
		{
			name:    "stall before headers",
			url:     self.URL + "/stall-headers",
			opts:    Options{StallTimeout: 100 * time.Millisecond, MinRate: -1},
			wantErr: []error{ErrStalled},
		},
		{
			name:    "overall timeout",
			url:     self.URL + "/stall-body",
			opts:    Options{StallTimeout: -1, MinRate: -1, Timeout: 50 * time.Millisecond},
			wantErr: []error{context.DeadlineExceeded},
		},
		{name: "redirect to another host", url: self.URL + "/to-other", wantErr: []error{ErrRedirectRefused}},
		{name: "redirect to http", url: self.URL + "/to-http", wantErr: []error{ErrRedirectRefused, ErrInsecureURL}},
		{name: "redirect loop", url: self.URL + "/loop", wantErr: []error{ErrRedirectRefused}},
		{name: "http URL", url: plain.URL + "/x", wantErr: []error{ErrInsecureURL}},
	}
	for _, tt := range tests {
		for _, mode := range []string{"Fetch", "Download"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				opts := tt.opts
				opts.HTTPClient = self.Client()
				c := New(opts)
				var got []byte
				var err error
				if mode == "Fetch" {
					got, err = c.Fetch(t.Context(), tt.url, 1<<20)
				} else {
					f := stagingFile(t)
					_, err = c.Download(t.Context(), tt.url, f, 1<<20, nil)
					got, _ = os.ReadFile(f.Name())
				}
				if tt.wantErr == nil {
					if err != nil || string(got) != tt.want {
						t.Fatalf("%s = %q, %v; want %q", mode, got, err, tt.want)
					}
					return
				}
				if err == nil {
					t.Fatalf("%s succeeded, want %v", mode, tt.wantErr)
				}
				for _, want := range tt.wantErr {
					var status *HTTPStatusError
					if errors.As(want, &status) {
						var gotStatus *HTTPStatusError
						if !errors.As(err, &gotStatus) || gotStatus.Code != status.Code || gotStatus.URL != tt.url {
							t.Errorf("%s error = %v, want HTTP %d for %s", mode, err, status.Code, tt.url)
						}
						continue
					}
					if !errors.Is(err, want) {
						t.Errorf("%s error = %v, want %v", mode, err, want)
					}
				}
				if !strings.Contains(err.Error(), tt.url) {
					t.Errorf("error %q does not name the URL %s", err, tt.url)
				}
			})
		}
	}
	if n := plainHits.Load(); n != 0 {
		t.Errorf("the plain-http server got %d requests, want 0", n)
	}
}

func TestHTTPStatusErrorMessage(t *testing.T) {
	t.Parallel()
	err := &HTTPStatusError{URL: "https://cdn.example/f", Code: 404}
	if got, want := err.Error(), "GET https://cdn.example/f: server answered 404 Not Found"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestCallerClientUntouched checks that the caller's client keeps its own
// redirect policy and that ours is applied on a copy.
func TestCallerClientUntouched(t *testing.T) {
	t.Parallel()
	var self *httptest.Server
	mux := http.NewServeMux()
	mux.Handle("/a", redirectTo(func() string { return self.URL + "/b" }))
	mux.Handle("/b", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") }))
	self = newTLS(t, mux)
	errCaller := errors.New("caller policy")
	hc := self.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return errCaller }
	c := New(Options{HTTPClient: hc})
	if _, err := c.Fetch(t.Context(), self.URL+"/a", 10); !errors.Is(err, errCaller) {
		t.Errorf("Fetch error = %v, want the caller's redirect error", err)
	}
	if err := hc.CheckRedirect(nil, nil); !errors.Is(err, errCaller) {
		t.Errorf("caller's CheckRedirect was replaced")
	}
}

func TestParseContentRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in          string
		start, size int64
		ok          bool
	}{
		{"bytes 0-9/10", 0, 10, true},
		{"bytes 5-9/*", 5, -1, true},
		{"bytes 5-9/9", 0, 0, false},
		{"bytes 9-5/10", 0, 0, false},
		{"bytes -1-5/10", 0, 0, false},
		{"items 0-9/10", 0, 0, false},
		{"bytes */10", 0, 0, false},
		{"bytes +5-9/10", 0, 0, false},
		{"bytes 5-+9/10", 0, 0, false},
		{"bytes 5-9/+10", 0, 0, false},
		{"bytes 5-9/99999999999999999999", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		start, size, ok := parseContentRange(tt.in)
		if ok != tt.ok || ok && (start != tt.start || size != tt.size) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, %v", tt.in, start, size, ok, tt.start, tt.size, tt.ok)
		}
	}
}

func stagingFileIn(t *testing.T, dir string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(dir, "*.unverified")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestStoredBytes checks that the client keeps the bytes as stored: a CDN
// that labels a .tar.gz with Content-Encoding: gzip must not get it
// transparently decompressed (the hash would then be of the wrong bytes).
func TestStoredBytes(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(bytes.Repeat([]byte("teleport "), 1000))
	gz.Close()
	stored := buf.Bytes()
	srv := newTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(stored)
	}))
	c := New(Options{HTTPClient: srv.Client()})
	got, err := c.Fetch(t.Context(), srv.URL, 1<<20)
	if err != nil || !bytes.Equal(got, stored) {
		t.Errorf("Fetch = %d bytes, %v; want the %d stored bytes", len(got), err, len(stored))
	}
	f := stagingFile(t)
	res, err := c.Download(t.Context(), srv.URL, f, 1<<20, nil)
	if err != nil || res.SHA256 != sha256Hex(stored) {
		t.Errorf("Download = %+v, %v; want the hash of the stored bytes", res, err)
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-9/*", "bytes 9-5/10", "bytes */10", "bytes 1-2/3/4", "bytes 00-1/2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		defer fuzzwatch.Start()()
		start, size, ok := parseContentRange(s)
		if !ok {
			return
		}
		if start < 0 || size < -1 || size >= 0 && start >= size {
			t.Fatalf("parseContentRange(%q) = %d, %d: inconsistent range accepted", s, start, size)
		}
		if strings.ContainsAny(s, "+\t") || strings.Count(s, " ") != 1 || strings.Count(s, "-") != 1 {
			t.Fatalf("parseContentRange(%q) accepted signs or extra spaces", s)
		}
	})
}

// TestStream: a stream gets every byte exactly once, in order, across a
// resumed transfer and across one whose server answers a range request
// with the whole file (the bytes the stream has are skipped, not sent
// again); the hash is over exactly what the stream got. A failed write
// ends the transfer at once with the writer's error.
func TestStream(t *testing.T) {
	data := randomBytes(t, 3<<20)
	for _, tc := range []struct {
		name        string
		srv         *fileServer
		wantResumed int
	}{
		{"whole", &fileServer{data: data, ranges: true}, 0},
		{"resumed", &fileServer{data: data, ranges: true, cutAt: 1 << 20, cuts: 2}, 2},
		{"range-ignored", &fileServer{data: data, ranges: true, ignoreRange: true, cutAt: 1<<20 + 7, cuts: 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTLS(t, tc.srv)
			var got bytes.Buffer
			res, err := New(Options{HTTPClient: srv.Client()}).Stream(t.Context(), srv.URL+"/f", &got, t.TempDir(), 1<<30, nil)
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if !bytes.Equal(got.Bytes(), data) || res.SHA256 != sha256Hex(data) || res.Size != int64(len(data)) || res.Resumed != tc.wantResumed {
				t.Errorf("Stream wrote %d bytes (equal: %v), result %+v; want the file once, resumed %d times",
					got.Len(), bytes.Equal(got.Bytes(), data), res, tc.wantResumed)
			}
		})
	}
	t.Run("write-fails", func(t *testing.T) {
		t.Parallel()
		srv := newTLS(t, &fileServer{data: data, ranges: true})
		refused := errors.New("unpacker refused an entry")
		w := &failingWriter{after: 1 << 20, err: refused}
		_, err := New(Options{HTTPClient: srv.Client()}).Stream(t.Context(), srv.URL+"/f", w, t.TempDir(), 1<<30, nil)
		if !errors.Is(err, refused) || w.n > 1<<20 || w.calls > w.failedAt {
			t.Errorf("Stream over a failing writer = %v after %d bytes, %d writes (failed at %d); want the writer's error at once", err, w.n, w.calls, w.failedAt)
		}
	})
}

// failingWriter accepts after bytes, then fails every write with err.
type failingWriter struct {
	after, n        int64
	calls, failedAt int
	err             error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.n+int64(len(p)) > w.after {
		if w.failedAt == 0 {
			w.failedAt = w.calls
		}
		return 0, w.err
	}
	w.n += int64(len(p))
	return len(p), nil
}
