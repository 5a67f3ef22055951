package store

import (
	"sync"
	"time"
)

// writeHealth follows the outcome of the writer's commits.
type writeHealth struct {
	mu      sync.Mutex
	since   time.Time // first failure since the last success; zero while healthy
	lastErr error
}

// record notes the outcome of one commit at now.
func (h *writeHealth) record(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.since, h.lastErr = time.Time{}, nil
		return
	}
	if h.since.IsZero() {
		h.since = now
	}
	h.lastErr = err
}

// WriteFailure reports whether census writes are failing: since when
// commits have failed without one succeeding, and the latest error. While
// the last commit succeeded, or none has been tried, it returns a zero
// time and nil. A proxy uses it for its readiness.
//
// On PostgreSQL it also reports a database that does not answer its
// periodic ping, so that a proxy without reports to store still notices a
// lost database.
func (s *Store) WriteFailure() (since time.Time, err error) {
	if s.pg != nil {
		s.pg.reach.mu.Lock()
		since, err := s.pg.reach.since, s.pg.reach.lastErr
		s.pg.reach.mu.Unlock()
		if err != nil {
			return since, err
		}
	}
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	return s.health.since, s.health.lastErr
}
