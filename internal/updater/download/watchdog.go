package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// watchdog abandons a transfer that stalls or falls below the minimum rate.
// It runs in its own goroutine and cancels the request context with
// ErrStalled or ErrTooSlow as the cause, which unblocks a Read stuck on the
// network. Its clock is the time package, so tests drive it with
// testing/synctest.
type watchdog struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	bytes  atomic.Int64
	done   chan struct{}
	wg     sync.WaitGroup
}

// startWatchdog derives the context for one transfer. Call stop when the
// transfer ends.
func (c *Client) startWatchdog(parent context.Context) *watchdog {
	ctx, cancel := context.WithCancelCause(parent)
	if c.timeout > 0 {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, c.timeout)
		cancelAll := cancel
		cancel = func(cause error) { cancelTimeout(); cancelAll(cause) }
	}
	w := &watchdog{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	if c.stallTimeout < 0 && c.minRate < 0 {
		return w
	}
	tick := c.rateWindow
	if c.stallTimeout > 0 && c.stallTimeout < tick {
		tick = c.stallTimeout
	}
	tick /= 8
	if tick < time.Millisecond {
		tick = time.Millisecond
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.run(tick, c.stallTimeout, c.minRate, c.rateWindow)
	}()
	return w
}

type sample struct {
	at    time.Time
	bytes int64
}

func (w *watchdog) run(tick, stall time.Duration, minRate int64, window time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	lastBytes, lastChange := int64(0), start
	samples := []sample{{start, 0}}
	for {
		select {
		case <-w.done:
			return
		case <-w.ctx.Done():
			return
		case now := <-t.C:
			n := w.bytes.Load()
			if n != lastBytes {
				lastBytes, lastChange = n, now
			}
			if stall > 0 && now.Sub(lastChange) >= stall {
				w.cancel(fmt.Errorf("%w: no data for %s", ErrStalled, stall))
				return
			}
			if minRate < 0 {
				continue
			}
			samples = append(samples, sample{now, n})
			// Keep one sample at or before now-window as the base.
			for len(samples) > 1 && !samples[1].at.After(now.Add(-window)) {
				samples = samples[1:]
			}
			base := samples[0]
			if elapsed := now.Sub(base.at); elapsed >= window {
				rate := float64(n-base.bytes) / elapsed.Seconds()
				if rate < float64(minRate) {
					w.cancel(fmt.Errorf("%w: %.0f bytes/s over %s, minimum %d", ErrTooSlow, rate, window, minRate))
					return
				}
			}
		}
	}
}

// stop ends the watchdog and releases the context.
func (w *watchdog) stop() {
	close(w.done)
	w.wg.Wait()
	w.cancel(context.Canceled)
}

// meter counts bytes read through r as progress.
func (w *watchdog) meter(r io.Reader) io.Reader { return meterReader{r, &w.bytes} }

type meterReader struct {
	r io.Reader
	n *atomic.Int64
}

func (m meterReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.n.Add(int64(n))
	return n, err
}

// cause replaces err by the watchdog's verdict when the watchdog (not the
// caller) cancelled the transfer.
func (w *watchdog) cause(err error) error {
	if cause := context.Cause(w.ctx); cause != nil && (errors.Is(cause, ErrStalled) || errors.Is(cause, ErrTooSlow)) {
		return cause
	}
	return err
}
