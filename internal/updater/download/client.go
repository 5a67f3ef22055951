package download

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/diskspace"
	"github.com/gravitational/teleport-update/internal/readahead"
)

// Defaults for Options and fixed limits of the client.
const (
	DefaultStallTimeout = 10 * time.Second
	DefaultMinRate      = 1024 // bytes per second
	DefaultRateWindow   = 10 * time.Second

	// MaxRedirects is the number of redirect hops followed before refusing.
	MaxRedirects = 3
	// MaxResumes is how many times Download resumes a broken transfer.
	MaxResumes = 3

	// copyBufferSize is the read size of Download: large enough to keep
	// syscalls and hash calls cheap, small enough to keep RSS flat.
	copyBufferSize = 256 << 10
)

var (
	// ErrTooLarge means the server announced or sent more than the cap. It
	// is capread.ErrTooLarge: one name, one meaning, wherever input is capped.
	ErrTooLarge = capread.ErrTooLarge
	// ErrStalled means no byte arrived for Options.StallTimeout.
	ErrStalled = errors.New("transfer stalled")
	// ErrTooSlow means the transfer rate averaged over Options.RateWindow
	// fell below Options.MinRate.
	ErrTooSlow = errors.New("transfer too slow")
	// ErrRedirectRefused means the server redirected to another host, to
	// plain http, or more than MaxRedirects times.
	ErrRedirectRefused = errors.New("redirect refused")
)

// HTTPStatusError is returned when the server answers with a status the
// client cannot use (anything but 200, or 206 to a range request).
type HTTPStatusError struct {
	URL  string
	Code int
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("GET %s: server answered %d %s", e.URL, e.Code, http.StatusText(e.Code))
}

// Options configures a Client. The zero value is usable.
type Options struct {
	// HTTPClient performs the requests. nil: a client using the system
	// certificate pool (so SSL_CERT_FILE works), http.ProxyFromEnvironment
	// and TLS 1.2 or newer. The redirect policy of this package is always
	// applied on top of the client's own CheckRedirect.
	HTTPClient *http.Client
	// StallTimeout abandons a transfer when no byte arrived for this long
	// (headers included). 0 means DefaultStallTimeout, negative disables.
	StallTimeout time.Duration
	// MinRate abandons a transfer whose rate, averaged over RateWindow,
	// is below this many bytes per second. 0 means DefaultMinRate,
	// negative disables.
	MinRate int64
	// RateWindow is the averaging window for MinRate. 0 means
	// DefaultRateWindow.
	RateWindow time.Duration
	// Timeout is an overall deadline for one Fetch or Download, resumes
	// included. 0 means none beyond the caller's context.
	Timeout time.Duration
	// Logger receives progress and resume events. nil discards them.
	Logger *slog.Logger
	// ReserveBytes is the free space a download must leave on the
	// filesystem it writes to: a download whose announced size does not
	// fit is refused before its body is read. 0 means
	// diskspace.DefaultReserve, negative disables the check.
	ReserveBytes int64
}

// Client fetches files over HTTPS with hard limits on size, rate and
// redirects. It is safe for concurrent use.
type Client struct {
	hc           *http.Client
	stallTimeout time.Duration
	minRate      int64
	rateWindow   time.Duration
	timeout      time.Duration
	logger       *slog.Logger
	reserve      int64
}

// New returns a Client configured by opts.
func New(opts Options) *Client {
	c := &Client{
		stallTimeout: opts.StallTimeout,
		minRate:      opts.MinRate,
		rateWindow:   opts.RateWindow,
		timeout:      opts.Timeout,
		logger:       opts.Logger,
		reserve:      opts.ReserveBytes,
	}
	if c.stallTimeout == 0 {
		c.stallTimeout = DefaultStallTimeout
	}
	if c.minRate == 0 {
		c.minRate = DefaultMinRate
	}
	if c.rateWindow <= 0 {
		c.rateWindow = DefaultRateWindow
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.reserve == 0 {
		c.reserve = diskspace.DefaultReserve
	}
	var hc http.Client
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient // a copy: the caller's client stays untouched
	} else {
		hc = *defaultHTTPClient()
	}
	hc.CheckRedirect = redirectPolicy(hc.CheckRedirect, c.logger)
	c.hc = &hc
	return c
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t}
}

// redirectPolicy refuses redirects to plain http, to another host, and more
// than MaxRedirects hops, then defers to the caller's policy if any.
func redirectPolicy(next func(*http.Request, []*http.Request) error, logger *slog.Logger) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > MaxRedirects {
			return fmt.Errorf("%w: more than %d redirects", ErrRedirectRefused, MaxRedirects)
		}
		if req.URL.Scheme != "https" {
			return fmt.Errorf("%w to %s: %w", ErrRedirectRefused, redact(req.URL), ErrInsecureURL)
		}
		if from := via[0].URL; origin(req.URL) != origin(from) {
			return fmt.Errorf("%w: from host %s to another host %s", ErrRedirectRefused, from.Host, req.URL.Host)
		}
		logger.DebugContext(req.Context(), "Following redirect.", "from", redact(via[len(via)-1].URL), "to", redact(req.URL))
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}

// origin returns scheme://host:port with the default port filled in.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// redact returns u without user info, query or fragment, for logs and errors.
func redact(u *url.URL) string {
	r := *u
	r.User, r.RawQuery, r.ForceQuery, r.Fragment, r.RawFragment = nil, "", false, "", ""
	return r.String()
}

// checkFetchURL refuses anything but an absolute https URL before any
// request is made.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("GET %s: %w: %v", quote(raw), ErrInvalidBaseURL, err)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("GET %s: %w", redact(u), ErrInsecureURL)
	}
	if u.Host == "" {
		return fmt.Errorf("GET %s: %w: no host", redact(u), ErrInvalidBaseURL)
	}
	return nil
}

// newRequest builds a request for url asking for the bytes as stored: with
// an explicit identity Accept-Encoding, net/http neither asks for gzip nor
// transparently decompresses, so a CDN that labels a .tar.gz with
// Content-Encoding: gzip cannot change the bytes that get hashed.
func newRequest(ctx context.Context, method, url string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

// Fetch downloads a small file (a checksum, a bundle, a policy answer) into
// memory. It reads at most max+1 bytes.
//
// Outcomes: the body of a 200 answer; ErrInsecureURL for a non-https URL
// (no request is made); *HTTPStatusError for any other status; ErrTooLarge
// when the body (or its Content-Length) exceeds max; ErrStalled or
// ErrTooSlow from the watchdog; ErrRedirectRefused; the context's error;
// otherwise a transport error. Every error names the URL.
func (c *Client) Fetch(ctx context.Context, url string, max int64) ([]byte, error) {
	if err := checkFetchURL(url); err != nil {
		return nil, err
	}
	w := c.startWatchdog(ctx)
	defer w.stop()
	req, err := newRequest(w.ctx, http.MethodGet, url)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, w.cause(unwrapURLError(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPStatusError{URL: url, Code: resp.StatusCode}
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("GET %s: %w: Content-Length %d exceeds %d", url, ErrTooLarge, resp.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(w.meter(resp.Body), max+1))
	if err == nil {
		// A server may end the body cleanly because we hung up on it.
		err = w.ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading body: %w", url, w.cause(err))
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("GET %s: %w: more than %d bytes", url, ErrTooLarge, max)
	}
	return body, nil
}

// Result describes a completed Download.
type Result struct {
	SHA256  string // lowercase hex SHA-256 of the bytes written
	Size    int64  // bytes written
	Resumed int    // how many times a broken transfer was resumed
}

// File is what Download writes to; *os.File is one. Download truncates
// and rewinds it when a transfer starts over, and checks free space on the
// filesystem of the directory Name is in.
type File interface {
	io.Writer
	io.Seeker
	Truncate(size int64) error
	Name() string
}

// errStop marks failures Download must not retry.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }
func (e errStop) Unwrap() error { return e.err }

// Download streams url into f (truncated first) in one pass, hashing the
// bytes as they are written, and returns their SHA-256 and size. f should
// be a staging file on the install filesystem; on error its content is
// undefined and the caller removes it. progress, if not nil, is called with
// the bytes done and the announced total (-1 when unknown).
//
// When the connection breaks mid-body and the server supports ranges
// (Accept-Ranges: bytes, or a 206 answer), Download resumes with a Range
// request (and If-Range with a strong ETag or Last-Modified) up to
// MaxResumes times, continuing the hash. A 200 answer to a range request
// restarts from zero. The cap max holds across resumes.
//
// An answer whose Content-Length does not fit on f's filesystem with the
// reserve left over (Options.ReserveBytes) is refused before its body is
// read. The first failed write on f ends the transfer at once: no more of
// the body is read.
//
// Outcomes are those of Fetch, plus diskspace.ErrNoSpace for an answer
// that does not fit or a write that ran out of room, and other write
// errors on f.
func (c *Client) Download(ctx context.Context, url string, f File, max int64, progress func(done, total int64)) (Result, error) {
	if err := checkFetchURL(url); err != nil {
		return Result{}, err
	}
	if err := f.Truncate(0); err != nil {
		return Result{}, fmt.Errorf("download %s: truncating %s: %w", url, f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Result{}, fmt.Errorf("download %s: seeking %s: %w", url, f.Name(), err)
	}
	return c.transfer(ctx, &transfer{url: url, out: f, file: f, spaceDir: filepath.Dir(f.Name()), name: f.Name(), max: max, progress: progress})
}

// Stream is Download into a stream w that cannot be rewound, such as a
// pipe into an unpacker: every byte is written to w exactly once, in
// order. When a resumed transfer gets a 200 answer to its range request,
// Stream skips the bytes w already has instead of starting over; the hash
// still covers exactly the bytes w got, so a file that changed on the
// server meanwhile fails the caller's checksum comparison. spaceDir is
// the directory whose filesystem must hold the announced size with the
// reserve left over. A failed write on w ends the transfer at once, and
// its error is in the one returned.
func (c *Client) Stream(ctx context.Context, url string, w io.Writer, spaceDir string, max int64, progress func(done, total int64)) (Result, error) {
	if err := checkFetchURL(url); err != nil {
		return Result{}, err
	}
	return c.transfer(ctx, &transfer{url: url, out: w, spaceDir: spaceDir, name: "the unpacker", max: max, progress: progress})
}

// transfer runs d's attempts until the body is complete or an error is
// final, resuming a broken transfer when it can.
func (c *Client) transfer(ctx context.Context, d *transfer) (Result, error) {
	var res Result
	w := c.startWatchdog(ctx)
	defer w.stop()
	d.c, d.wd, d.h, d.total = c, w, sha256.New(), -1
	for {
		err := d.attempt()
		if err == nil {
			break
		}
		var stop errStop
		if errors.As(err, &stop) {
			var status *HTTPStatusError
			if errors.As(stop.err, &status) {
				return res, status // already names GET and the URL
			}
			return res, fmt.Errorf("download %s: %w", d.url, stop.err)
		}
		err = w.cause(err)
		if w.ctx.Err() != nil || !d.rangeOK || d.done == 0 || res.Resumed >= MaxResumes {
			return res, fmt.Errorf("download %s: after %d bytes: %w", d.url, d.done, err)
		}
		res.Resumed++
		c.logger.WarnContext(ctx, "Download interrupted; resuming.", "url", d.url, "offset", d.done, "attempt", res.Resumed, "error", err)
	}
	res.SHA256 = hex.EncodeToString(d.h.Sum(nil))
	res.Size = d.done
	return res, nil
}

// transfer is the state of one Download or Stream across its attempts.
type transfer struct {
	c        *Client
	wd       *watchdog
	url      string
	out      io.Writer
	file     File   // out when it can be rewound (Download); nil for a stream
	spaceDir string // whose filesystem must hold the announced size
	name     string // what w is, for errors
	max      int64
	progress func(done, total int64)
	h        interface {
		io.Writer
		Sum([]byte) []byte
		Reset()
	}
	done      int64  // bytes written to w and hashed
	skip      int64  // bytes of the current answer w already has (Stream)
	total     int64  // announced full size, -1 if unknown
	rangeOK   bool   // the server supports byte ranges
	validator string // If-Range value: strong ETag or Last-Modified
}

// attempt makes one request and copies its body. A returned errStop must
// not be retried; any other error may be resumed.
func (d *transfer) attempt() error {
	req, err := newRequest(d.wd.ctx, http.MethodGet, d.url)
	if err != nil {
		return errStop{err}
	}
	d.skip = 0
	if d.done > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(d.done, 10)+"-")
		if d.validator != "" {
			req.Header.Set("If-Range", d.validator)
		}
	}
	resp, err := d.c.hc.Do(req)
	if err != nil {
		err = unwrapURLError(err)
		if errors.Is(err, ErrRedirectRefused) || errors.Is(err, ErrInsecureURL) {
			return errStop{err}
		}
		return err
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusOK:
		if d.done > 0 {
			if err := d.restart(req.Context()); err != nil {
				return errStop{err}
			}
		}
		d.total = resp.ContentLength
		d.rangeOK = acceptsRanges(resp.Header)
		d.validator = validator(resp.Header)
	case resp.StatusCode == http.StatusPartialContent && d.done > 0:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != d.done {
			return errStop{fmt.Errorf("server answered Content-Range %s to a request from byte %d", quote(resp.Header.Get("Content-Range")), d.done)}
		}
		if size >= 0 {
			d.total = size
		}
		d.rangeOK = true
	default:
		return errStop{&HTTPStatusError{URL: d.url, Code: resp.StatusCode}}
	}
	if d.total > d.max {
		return errStop{fmt.Errorf("%w: announced size %d exceeds %d", ErrTooLarge, d.total, d.max)}
	}
	if resp.ContentLength >= 0 && d.done-d.skip+resp.ContentLength > d.max {
		return errStop{fmt.Errorf("%w: announced size %d exceeds %d", ErrTooLarge, d.done-d.skip+resp.ContentLength, d.max)}
	}
	if resp.ContentLength >= 0 {
		if err := d.c.checkSpace(d.spaceDir, resp.ContentLength); err != nil {
			return errStop{err}
		}
	}
	return d.copy(d.wd.meter(resp.Body))
}

// pipelineDepth is how many copy buffers are in flight between the
// goroutine reading the network and the one hashing and writing.
const pipelineDepth = 4

// copy streams body into the output and the hash until EOF. Reading (TLS decryption)
// runs ahead in its own goroutine over a few large buffers while this one
// hashes and writes, so the SHA-256 costs no extra wall time when a core is
// free. A failed write cancels the transfer, which unblocks the reader at
// once: on a full disk the rest of the body is never fetched.
func (d *transfer) copy(body io.Reader) error {
	ra := readahead.New(body, copyBufferSize, pipelineDepth)
	rerr := d.drain(ra)
	var stop errStop
	if errors.As(rerr, &stop) {
		// The reader may wait on the network for bytes nobody wants.
		d.wd.cancel(stop.err)
	}
	ra.Close()
	switch {
	case errors.As(rerr, &stop):
		return rerr
	case rerr == io.EOF:
		// A server may end the body cleanly because we hung up on it.
		if err := d.wd.ctx.Err(); err != nil {
			return fmt.Errorf("reading body: %w", err)
		}
	default:
		return fmt.Errorf("reading body: %w", rerr)
	}
	switch {
	case d.total >= 0 && d.done < d.total:
		return fmt.Errorf("reading body: %w: got %d of %d bytes", io.ErrUnexpectedEOF, d.done, d.total)
	case d.total >= 0 && d.done > d.total:
		return errStop{fmt.Errorf("server sent %d bytes, more than the %d it announced", d.done, d.total)}
	}
	return nil
}

// drain writes and hashes the chunks ra read until the body's end (io.EOF),
// a read error, a cancelled transfer, more than max bytes or a failed write
// (the last two as errStop). What was read before a read error is written
// first, so a resume starts exactly after it.
func (d *transfer) drain(ra *readahead.Reader) error {
	for {
		if err := d.wd.ctx.Err(); err != nil {
			return err
		}
		chunk, rerr := ra.Next()
		if d.skip > 0 {
			n := min(d.skip, int64(len(chunk)))
			chunk, d.skip = chunk[n:], d.skip-n
		}
		if over := d.done + int64(len(chunk)) - d.max; over > 0 {
			chunk = chunk[:len(chunk)-int(over)]
			rerr = errStop{fmt.Errorf("%w: more than %d bytes", ErrTooLarge, d.max)}
		}
		if len(chunk) > 0 {
			if _, err := d.out.Write(chunk); err != nil {
				return errStop{fmt.Errorf("writing %s: %w", d.name, diskspace.Label(err))}
			}
			d.h.Write(chunk)
			d.done += int64(len(chunk))
			if d.progress != nil {
				d.progress(d.done, d.total)
			}
		}
		if rerr != nil {
			return rerr
		}
	}
}

// restart handles a 200 answer to a range request: a file is truncated
// and written again from zero; a stream keeps what it has and the body's
// first d.done bytes are skipped.
func (d *transfer) restart(ctx context.Context) error {
	if d.file == nil {
		d.c.logger.WarnContext(ctx, "Server ignored the range request; skipping what was already received.", "url", d.url, "offset", d.done)
		d.skip = d.done
		return nil
	}
	d.c.logger.WarnContext(ctx, "Server ignored the range request; restarting from zero.", "url", d.url, "offset", d.done)
	if err := d.file.Truncate(0); err != nil {
		return fmt.Errorf("truncating %s: %w", d.name, err)
	}
	if _, err := d.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seeking %s: %w", d.name, err)
	}
	d.h.Reset()
	d.done, d.total = 0, -1
	return nil
}

func acceptsRanges(h http.Header) bool {
	for _, v := range h.Values("Accept-Ranges") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "bytes") {
				return true
			}
		}
	}
	return false
}

// validator returns the If-Range value for h: a strong ETag, else
// Last-Modified, else "".
func validator(h http.Header) string {
	if etag := h.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		return etag
	}
	return h.Get("Last-Modified")
}

// parseContentRange parses "bytes START-END/SIZE" (SIZE may be "*", then
// size is -1).
func parseContentRange(s string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	first, last, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, ok1 := parseDigits(first)
	end, ok2 := parseDigits(last)
	if !ok1 || !ok2 || end < start {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		n, ok := parseDigits(sz)
		if !ok || n <= end {
			return 0, 0, false
		}
		size = n
	}
	return start, size, true
}

// parseDigits parses a non-negative decimal made of ASCII digits only (no
// sign, no spaces).
func parseDigits(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// unwrapURLError drops net/http's *url.Error layer, whose message repeats
// the URL the caller's wrapping already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// checkSpace refuses a download of need bytes into dir when it would leave
// less than the reserve free.
func (c *Client) checkSpace(dir string, need int64) error {
	if c.reserve < 0 {
		return nil
	}
	return diskspace.Check(dir, need, c.reserve, "to download")
}

// announcedSize asks for url's size with a HEAD request: the
// Content-Length of a 200 answer, -1 when the server does not say.
func (c *Client) announcedSize(ctx context.Context, url string) (int64, error) {
	if err := checkFetchURL(url); err != nil {
		return -1, err
	}
	w := c.startWatchdog(ctx)
	defer w.stop()
	req, err := newRequest(w.ctx, http.MethodHead, url)
	if err != nil {
		return -1, fmt.Errorf("HEAD %s: %w", url, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return -1, fmt.Errorf("HEAD %s: %w", url, w.cause(unwrapURLError(err)))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1, fmt.Errorf("HEAD %s: server answered %d %s", url, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return resp.ContentLength, nil
}
