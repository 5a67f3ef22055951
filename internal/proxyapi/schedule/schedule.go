// Package schedule is the pure time math of the proxy's maintenance
// windows: cron start times (UTC) plus a duration, the window open at an
// instant, and the next one.
//
// Nothing here reads the clock: every function takes now as an argument.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ErrInvalidSchedule is wrapped by every error ParseSchedule returns.
var ErrInvalidSchedule = errors.New("invalid schedule")

// Limits on schedules.
const (
	// MaxDuration is the longest accepted window duration. Windows longer
	// than a week are better expressed as schedule immediate.
	MaxDuration = 7 * 24 * time.Hour
	// MaxExprLen bounds the cron expression length.
	MaxExprLen = 256
	// maxMergeSteps bounds how many overlapping or adjacent windows are
	// merged into one in each direction. A schedule whose windows overlap
	// forever (e.g. "* * * * *" with 2m) is open at all times; its merged
	// window is reported as at most this many starts around now.
	maxMergeSteps = 256
)

// Window is a maintenance window: Start is inside it, End is not.
type Window struct {
	Start, End time.Time
}

// Contains reports whether t is inside w (Start <= t < End).
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.Start) && t.Before(w.End)
}

// IsZero reports whether w is the zero Window (no window).
func (w Window) IsZero() bool { return w.Start.IsZero() && w.End.IsZero() }

// Schedule is a set of windows: each cron activation (evaluated in UTC)
// opens a window lasting Duration. Overlapping or touching windows merge
// into one. A Schedule is immutable and safe for concurrent use.
type Schedule struct {
	expr     string
	duration time.Duration
	spec     *cron.SpecSchedule
}

// parser accepts the standard 5-field format (minute, hour, day of month,
// month, day of week) and the anchored descriptors @yearly, @annually,
// @monthly, @weekly, @daily, @midnight and @hourly.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a cron expression for window starts and the window
// duration. Outcomes:
//   - a Schedule when expr is a standard 5-field cron expression or an
//     anchored descriptor (@daily, @weekly, ...) and 0 < d <= MaxDuration;
//   - an error wrapping ErrInvalidSchedule otherwise, including for
//     "@every" (not anchored to the calendar), a TZ= or CRON_TZ= prefix
//     (windows are always UTC), and expressions that never fire (Apr 31).
func ParseSchedule(expr string, d time.Duration) (*Schedule, error) {
	if d <= 0 {
		return nil, fmt.Errorf("%w: duration %s is not positive", ErrInvalidSchedule, d)
	}
	if d > MaxDuration {
		return nil, fmt.Errorf("%w: duration %s is longer than %s", ErrInvalidSchedule, d, MaxDuration)
	}
	spec, err := parseCron(expr)
	if err != nil {
		return nil, err
	}
	s := &Schedule{expr: expr, duration: d, spec: spec}
	// cron gives up after five years; a schedule that fires at all fires
	// within any five-year span except for rare day-of-week and
	// day-of-month combinations, which cron ORs, so one probe suffices.
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("%w: cron expression %q never fires", ErrInvalidSchedule, expr)
	}
	return s, nil
}

func parseCron(expr string) (spec *cron.SpecSchedule, err error) {
	if len(expr) > MaxExprLen {
		return nil, fmt.Errorf("%w: cron expression is longer than %d bytes", ErrInvalidSchedule, MaxExprLen)
	}
	trimmed := strings.TrimSpace(expr)
	if trimmed == "" {
		return nil, fmt.Errorf("%w: cron expression is empty", ErrInvalidSchedule)
	}
	if strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return nil, fmt.Errorf("%w: cron expression %q has a time zone; windows are always UTC", ErrInvalidSchedule, expr)
	}
	if strings.HasPrefix(trimmed, "@every") {
		return nil, fmt.Errorf("%w: cron expression %q: @every is not anchored to the calendar; use a 5-field expression", ErrInvalidSchedule, expr)
	}
	defer func() {
		// The cron parser has panicked on malformed input in the past;
		// outside data must never crash the proxy.
		if r := recover(); r != nil {
			spec, err = nil, fmt.Errorf("%w: cron expression %q: %v", ErrInvalidSchedule, expr, r)
		}
	}()
	parsed, err := parser.Parse(trimmed)
	if err != nil {
		return nil, fmt.Errorf("%w: cron expression %q: %v", ErrInvalidSchedule, expr, err)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("%w: cron expression %q is not a calendar schedule", ErrInvalidSchedule, expr)
	}
	spec.Location = time.UTC
	return spec, nil
}

// String returns the cron expression and duration.
func (s *Schedule) String() string { return fmt.Sprintf("%q for %s", s.expr, s.duration) }

// Duration returns the length of each window.
func (s *Schedule) Duration() time.Duration { return s.duration }

// nextStart returns the earliest window start strictly after t, or the zero
// time when there is none within five years.
func (s *Schedule) nextStart(t time.Time) time.Time {
	return s.spec.Next(t.UTC())
}

// Open reports whether a window is open at now.
func (s *Schedule) Open(now time.Time) bool {
	_, ok := s.Current(now)
	return ok
}

// Current returns the window containing now and true, or the zero Window
// and false when no window is open. Overlapping or touching windows are
// merged: the returned Start is the start of the first window of the run
// and End the end of the last one (at most maxMergeSteps windows each way).
func (s *Schedule) Current(now time.Time) (Window, bool) {
	now = now.UTC()
	// The earliest start in (now-d, now]: its window still contains now.
	first := s.nextStart(now.Add(-s.duration))
	if first.IsZero() || first.After(now) {
		return Window{}, false
	}
	// Walk back while an earlier window reaches first: the earliest start
	// in [first-d, first) overlaps or touches the run.
	start := first
	for range maxMergeSteps {
		prev := s.nextStart(start.Add(-s.duration - time.Nanosecond))
		if prev.IsZero() || !prev.Before(start) {
			break
		}
		start = prev
	}
	return Window{Start: start, End: s.runEnd(first)}, true
}

// Next returns the first window that starts after now and is not part of
// the window open at now, or the zero Window when cron finds no start within
// five years.
func (s *Schedule) Next(now time.Time) Window {
	now = now.UTC()
	after := now
	if cur, ok := s.Current(now); ok {
		after = cur.End
	}
	start := s.nextStart(after)
	if start.IsZero() {
		return Window{}
	}
	return Window{Start: start, End: s.runEnd(start)}
}

// CurrentOrNext returns the window open at now (open true) or else the next
// one (open false).
func (s *Schedule) CurrentOrNext(now time.Time) (w Window, open bool) {
	if w, ok := s.Current(now); ok {
		return w, true
	}
	return s.Next(now), false
}

// runEnd returns the end of the run of overlapping or touching windows that
// contains the window starting at start.
func (s *Schedule) runEnd(start time.Time) time.Time {
	end := start.Add(s.duration)
	cur := start
	for range maxMergeSteps {
		next := s.nextStart(cur)
		if next.IsZero() || next.After(end) {
			break
		}
		cur = next
		end = next.Add(s.duration)
	}
	return end
}
