package download

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// fakeBody makes a burst of chunk bytes available every interval, total
// bytes in all, and fails with the request context's cause when it is
// cancelled, as net/http's body does.
type fakeBody struct {
	ctx      context.Context
	interval time.Duration
	chunk    int
	left     int
	avail    int // bytes of the current burst not read yet
}

func (b *fakeBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	if b.avail == 0 {
		select {
		case <-b.ctx.Done():
			return 0, context.Cause(b.ctx)
		case <-time.After(b.interval):
		}
		b.avail = b.chunk
	}
	n := min(len(p), b.avail)
	if b.left > 0 {
		n = min(n, b.left)
		b.left -= n
	}
	b.avail -= n
	for i := range p[:n] {
		p[i] = 'x'
	}
	return n, nil
}

func (b *fakeBody) Close() error { return nil }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeServer answers every request after headerDelay with a fakeBody.
func fakeServer(headerDelay, interval time.Duration, chunk, total int) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		select {
		case <-r.Context().Done():
			return nil, context.Cause(r.Context())
		case <-time.After(headerDelay):
		}
		return &http.Response{
			StatusCode:    http.StatusOK,
			Header:        http.Header{},
			Body:          &fakeBody{ctx: r.Context(), interval: interval, chunk: chunk, left: total},
			ContentLength: -1,
			Request:       r,
		}, nil
	})}
}

// TestWatchdog runs the watchdog with its production defaults (10 s stall,
// 1 KiB/s over 10 s) on a fake clock: each case takes no real time. Every
// fake body ends eventually, so a broken watchdog fails the test instead of
// hanging it.
func TestWatchdog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		headerDelay time.Duration
		interval    time.Duration
		chunk       int
		total       int
		// cancelAfter cancels the caller's context after this long.
		cancelAfter time.Duration
		wantErr     error
		// wantWithin bounds the fake time the failure may take: a hopeless
		// transfer is abandoned well within 30 s.
		wantWithin time.Duration
	}{
		{name: "one byte per second for an hour", interval: time.Second, chunk: 1, total: 3600, wantErr: ErrTooSlow, wantWithin: 12 * time.Second},
		{name: "1000 bytes per second", interval: time.Second, chunk: 1000, total: 600_000, wantErr: ErrTooSlow, wantWithin: 12 * time.Second},
		{name: "stall in the body", interval: time.Hour, chunk: 1, total: 1, wantErr: ErrStalled, wantWithin: 11 * time.Second},
		{name: "stall before headers", headerDelay: time.Hour, interval: time.Second, chunk: 1, total: 1, wantErr: ErrStalled, wantWithin: 11 * time.Second},
		{name: "bursts every 9 s keep the stall timer quiet but are too slow", interval: 9 * time.Second, chunk: 100, total: 10_000, wantErr: ErrTooSlow, wantWithin: 20 * time.Second},
		{name: "slow but above the minimum succeeds", interval: 100 * time.Millisecond, chunk: 256, total: 64 << 10},
		{name: "bursts above the minimum succeed", interval: 5 * time.Second, chunk: 20 << 10, total: 200 << 10},
		{name: "caller cancels", interval: time.Second, chunk: 4096, total: 400_000, cancelAfter: 3 * time.Second, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		for _, mode := range []string{"Fetch", "Download"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				synctest.Test(t, func(t *testing.T) {
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel()
					if tt.cancelAfter > 0 {
						time.AfterFunc(tt.cancelAfter, cancel)
					}
					c := New(Options{HTTPClient: fakeServer(tt.headerDelay, tt.interval, tt.chunk, tt.total)})
					start := time.Now()
					var size int64
					var err error
					const url = "https://cdn.example/f"
					if mode == "Fetch" {
						var b []byte
						b, err = c.Fetch(ctx, url, 1<<20)
						size = int64(len(b))
					} else {
						f := stagingFileIn(t, dir)
						var res Result
						res, err = c.Download(ctx, url, f, 1<<20, nil)
						size = res.Size
					}
					elapsed := time.Since(start)
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("%s error = %v, want %v", mode, err, tt.wantErr)
					}
					if tt.wantErr == nil && size != int64(tt.total) {
						t.Errorf("%s got %d bytes, want %d", mode, size, tt.total)
					}
					if tt.wantWithin > 0 && elapsed > tt.wantWithin {
						t.Errorf("%s gave up after %s of fake time, want within %s", mode, elapsed, tt.wantWithin)
					}
				})
			})
		}
	}
}
