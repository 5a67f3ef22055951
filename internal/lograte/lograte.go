// Package lograte bounds how many log lines a repeated event produces: at
// most a burst of lines per interval, and the first line let through after
// some were dropped says how many. A client that can make the server fail a
// thousand times a second then costs a few lines a minute, while the
// operator still sees that it happens and how often.
package lograte

import (
	"sync"
	"time"
)

// Limiter lets through at most Burst events per fixed window of Every. It is
// safe for concurrent use.
type Limiter struct {
	burst int
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	start   time.Time // of the current window
	used    int       // events let through in it
	dropped int       // events dropped since the last one let through
}

// New returns a Limiter of burst events per every, reading the time from now
// (time.Now when nil).
func New(burst int, every time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{burst: max(burst, 1), every: every, now: now}
}

// Allow reports whether one more event may be logged now. When it may,
// dropped is how many events were refused since the last one allowed (to be
// logged with it); when it may not, the event is counted as dropped.
func (l *Limiter) Allow() (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.start) >= l.every || now.Before(l.start) {
		l.start, l.used = now, 0
	}
	if l.used >= l.burst {
		l.dropped++
		return false, 0
	}
	l.used++
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}
