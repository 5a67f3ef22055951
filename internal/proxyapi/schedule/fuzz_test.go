package schedule

import (
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

func FuzzParseSchedule(f *testing.F) {
	seeds := []struct {
		expr string
		d    time.Duration
	}{
		{"0 2 * * *", time.Hour},
		{"0 4 * * Tue,Thu", 2 * time.Hour},
		{"0 1-3 * * *", 90 * time.Minute},
		{"0 2 29 2 *", time.Hour},
		{"*/15 * * * *", 5 * time.Minute},
		{"@daily", time.Hour},
		{"@every 1h", time.Hour},
		{"TZ=x", time.Hour},
		{"0 2 31 4 *", time.Hour},
		{"* * * * *", MaxDuration},
		{"0 0 1 1 MON-FRI/2", time.Minute},
	}
	for _, s := range seeds {
		f.Add(s.expr, int64(s.d), int64(1795392000))
	}
	f.Fuzz(func(t *testing.T, expr string, d int64, unix int64) {
		defer fuzzwatch.Start()()
		s, err := ParseSchedule(expr, time.Duration(d))
		if err != nil {
			return
		}
		// Keep now within years cron handles (it gives up after 5 years).
		now := time.Unix(unix%(200*365*24*3600), 0).UTC().AddDate(1900, 0, 0)
		cur, open := s.Current(now)
		if open != s.Open(now) {
			t.Fatalf("Current and Open disagree at %s", now)
		}
		if open && !cur.Contains(now) {
			t.Fatalf("Current(%s) = %v does not contain now", now, cur)
		}
		next := s.Next(now)
		if next.IsZero() {
			return
		}
		if !next.Start.After(now) || !next.End.After(next.Start) {
			t.Fatalf("Next(%s) = %v; want a window starting after now", now, next)
		}
		if open && next.Start.Before(cur.End) {
			t.Fatalf("Next(%s) = %v overlaps the current window %v", now, next, cur)
		}
		if !s.Open(next.Start) {
			t.Fatalf("Next(%s) = %v is not open at its start", now, next)
		}
	})
}
