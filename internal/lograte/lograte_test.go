package lograte

import (
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := New(3, time.Minute, c.now)
	allowed := 0
	for range 1000 {
		if ok, dropped := l.Allow(); ok {
			allowed++
			if dropped != 0 {
				t.Errorf("dropped = %d within the first window", dropped)
			}
		}
	}
	if allowed != 3 {
		t.Fatalf("allowed %d of 1000 events in one window; want 3", allowed)
	}
	c.add(59 * time.Second)
	if ok, _ := l.Allow(); ok {
		t.Fatal("allowed an event before the window ended")
	}
	c.add(time.Second)
	ok, dropped := l.Allow()
	if !ok || dropped != 998 {
		t.Fatalf("first event of the next window = %v, dropped %d; want allowed, 998 dropped", ok, dropped)
	}
	if ok, dropped := l.Allow(); !ok || dropped != 0 {
		t.Fatalf("second event = %v, dropped %d; want allowed, 0 dropped", ok, dropped)
	}
	// A clock that steps back starts a new window rather than stalling.
	c.add(-time.Hour)
	if ok, _ := l.Allow(); !ok {
		t.Error("clock stepped back: event refused")
	}
}
