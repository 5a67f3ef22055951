package schedule

import (
	"errors"
	"testing"
	"time"
)

func ts(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("parse time %q: %v", s, err)
	}
	return v
}

func TestParseScheduleErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		expr string
		d    time.Duration
	}{
		{"empty", "", time.Hour},
		{"blank", "   ", time.Hour},
		{"zero duration", "0 2 * * *", 0},
		{"negative duration", "0 2 * * *", -time.Minute},
		{"duration too long", "0 2 * * *", MaxDuration + time.Second},
		{"four fields", "0 2 * *", time.Hour},
		{"six fields", "0 0 2 * * *", time.Hour},
		{"minute out of range", "61 * * * *", time.Hour},
		{"hour out of range", "0 24 * * *", time.Hour},
		{"bad weekday", "0 4 * * Tue,Xyz", time.Hour},
		{"reversed range", "0 3-1 * * *", time.Hour},
		{"time zone prefix", "TZ=Europe/Berlin 0 2 * * *", time.Hour},
		{"cron tz prefix", "CRON_TZ=UTC 0 2 * * *", time.Hour},
		{"tz prefix without space", "TZ=x", time.Hour},
		{"every", "@every 1h", time.Hour},
		{"reboot", "@reboot", time.Hour},
		{"unknown descriptor", "@sometimes", time.Hour},
		{"never fires", "0 2 31 4 *", time.Hour},
		{"too long", "0 2 * * *" + string(make([]byte, MaxExprLen)), time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSchedule(tt.expr, tt.d)
			if !errors.Is(err, ErrInvalidSchedule) {
				t.Fatalf("ParseSchedule(%q, %s) = %v, %v; want ErrInvalidSchedule", tt.expr, tt.d, s, err)
			}
		})
	}
}

func TestScheduleWindows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		expr     string
		d        time.Duration
		now      string
		open     bool
		cur      [2]string // current window when open
		next     [2]string // next window
		skipNext bool
	}{
		{
			name: "exact start instant is inside",
			expr: "0 2 * * *", d: time.Hour, now: "2026-11-22T02:00:00Z",
			open: true, cur: [2]string{"2026-11-22T02:00:00Z", "2026-11-22T03:00:00Z"},
			next: [2]string{"2026-11-23T02:00:00Z", "2026-11-23T03:00:00Z"},
		},
		{
			name: "last nanosecond is inside",
			expr: "0 2 * * *", d: time.Hour, now: "2026-11-22T02:59:59.999999999Z",
			open: true, cur: [2]string{"2026-11-22T02:00:00Z", "2026-11-22T03:00:00Z"},
			next: [2]string{"2026-11-23T02:00:00Z", "2026-11-23T03:00:00Z"},
		},
		{
			name: "exact end instant is outside",
			expr: "0 2 * * *", d: time.Hour, now: "2026-11-22T03:00:00Z",
			next: [2]string{"2026-11-23T02:00:00Z", "2026-11-23T03:00:00Z"},
		},
		{
			name: "just before start",
			expr: "0 2 * * *", d: time.Hour, now: "2026-11-22T01:59:59.999999999Z",
			next: [2]string{"2026-11-22T02:00:00Z", "2026-11-22T03:00:00Z"},
		},
		{
			name: "non-UTC now is converted",
			expr: "0 2 * * *", d: time.Hour, now: "2026-11-22T03:30:00+01:00",
			open: true, cur: [2]string{"2026-11-22T02:00:00Z", "2026-11-22T03:00:00Z"},
			next: [2]string{"2026-11-23T02:00:00Z", "2026-11-23T03:00:00Z"},
		},
		{
			name: "across midnight",
			expr: "0 23 * * *", d: 2 * time.Hour, now: "2026-11-23T00:30:00Z",
			open: true, cur: [2]string{"2026-11-22T23:00:00Z", "2026-11-23T01:00:00Z"},
			next: [2]string{"2026-11-23T23:00:00Z", "2026-11-24T01:00:00Z"},
		},
		{
			name: "across year end",
			expr: "30 23 31 12 *", d: time.Hour, now: "2027-01-01T00:15:00Z",
			open: true, cur: [2]string{"2026-12-31T23:30:00Z", "2027-01-01T00:30:00Z"},
			next: [2]string{"2027-12-31T23:30:00Z", "2028-01-01T00:30:00Z"},
		},
		{
			name: "across month end, skipping months without day 31",
			expr: "30 23 31 * *", d: time.Hour, now: "2026-11-01T00:29:00Z",
			open: true, cur: [2]string{"2026-10-31T23:30:00Z", "2026-11-01T00:30:00Z"},
			next: [2]string{"2026-12-31T23:30:00Z", "2027-01-01T00:30:00Z"},
		},
		{
			name: "last day of February in a leap year",
			expr: "0 22 29 2 *", d: 3 * time.Hour, now: "2028-03-01T00:59:00Z",
			open: true, cur: [2]string{"2028-02-29T22:00:00Z", "2028-03-01T01:00:00Z"},
			next: [2]string{"2032-02-29T22:00:00Z", "2032-03-01T01:00:00Z"},
		},
		{
			name: "Feb 29 from a non-leap year",
			expr: "0 2 29 2 *", d: time.Hour, now: "2026-03-01T00:00:00Z",
			next: [2]string{"2028-02-29T02:00:00Z", "2028-02-29T03:00:00Z"},
		},
		{
			name: "Feb 29 open",
			expr: "0 2 29 2 *", d: time.Hour, now: "2028-02-29T02:30:00Z",
			open: true, cur: [2]string{"2028-02-29T02:00:00Z", "2028-02-29T03:00:00Z"},
			next: [2]string{"2032-02-29T02:00:00Z", "2032-02-29T03:00:00Z"},
		},
		{
			name: "weekday list, Sunday to Tuesday",
			expr: "0 4 * * Tue,Thu", d: 2 * time.Hour, now: "2026-11-22T13:00:00Z", // a Sunday
			next: [2]string{"2026-11-24T04:00:00Z", "2026-11-24T06:00:00Z"},
		},
		{
			name: "weekday list, Thursday open",
			expr: "0 4 * * Tue,Thu", d: 2 * time.Hour, now: "2026-11-26T05:59:00Z",
			open: true, cur: [2]string{"2026-11-26T04:00:00Z", "2026-11-26T06:00:00Z"},
			next: [2]string{"2026-12-01T04:00:00Z", "2026-12-01T06:00:00Z"},
		},
		{
			name: "weekday list, Wednesday closed",
			expr: "0 4 * * Tue,Thu", d: 2 * time.Hour, now: "2026-11-25T05:00:00Z",
			next: [2]string{"2026-11-26T04:00:00Z", "2026-11-26T06:00:00Z"},
		},
		{
			name: "hour range, inside a short window",
			expr: "0 1-3 * * *", d: 30 * time.Minute, now: "2026-11-22T02:15:00Z",
			open: true, cur: [2]string{"2026-11-22T02:00:00Z", "2026-11-22T02:30:00Z"},
			next: [2]string{"2026-11-22T03:00:00Z", "2026-11-22T03:30:00Z"},
		},
		{
			name: "hour range, between short windows",
			expr: "0 1-3 * * *", d: 30 * time.Minute, now: "2026-11-22T02:45:00Z",
			next: [2]string{"2026-11-22T03:00:00Z", "2026-11-22T03:30:00Z"},
		},
		{
			name: "hour range, touching windows merge",
			expr: "0 1-3 * * *", d: time.Hour, now: "2026-11-22T02:15:00Z",
			open: true, cur: [2]string{"2026-11-22T01:00:00Z", "2026-11-22T04:00:00Z"},
			next: [2]string{"2026-11-23T01:00:00Z", "2026-11-23T04:00:00Z"},
		},
		{
			name: "duration longer than the gap, windows overlap and merge",
			expr: "0 1-3 * * *", d: 90 * time.Minute, now: "2026-11-22T04:29:00Z",
			open: true, cur: [2]string{"2026-11-22T01:00:00Z", "2026-11-22T04:30:00Z"},
			next: [2]string{"2026-11-23T01:00:00Z", "2026-11-23T04:30:00Z"},
		},
		{
			name: "merged window end is outside",
			expr: "0 1-3 * * *", d: 90 * time.Minute, now: "2026-11-22T04:30:00Z",
			next: [2]string{"2026-11-23T01:00:00Z", "2026-11-23T04:30:00Z"},
		},
		{
			name: "daily window longer than a day is always open",
			expr: "0 0 * * *", d: 25 * time.Hour, now: "2026-11-22T12:00:00Z",
			open: true, skipNext: true,
		},
		{
			name: "descriptor daily",
			expr: "@daily", d: time.Hour, now: "2026-11-22T00:59:00Z",
			open: true, cur: [2]string{"2026-11-22T00:00:00Z", "2026-11-22T01:00:00Z"},
			next: [2]string{"2026-11-23T00:00:00Z", "2026-11-23T01:00:00Z"},
		},
		{
			name: "step values",
			expr: "*/15 * * * *", d: 5 * time.Minute, now: "2026-11-22T10:20:00Z",
			next: [2]string{"2026-11-22T10:30:00Z", "2026-11-22T10:35:00Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseSchedule(tt.expr, tt.d)
			if err != nil {
				t.Fatalf("ParseSchedule(%q, %s): %v", tt.expr, tt.d, err)
			}
			now := ts(t, tt.now)
			cur, open := s.Current(now)
			if open != tt.open || s.Open(now) != tt.open {
				t.Fatalf("Current(%s) open = %v, Open = %v; want %v", tt.now, open, s.Open(now), tt.open)
			}
			if open && !cur.Contains(now) {
				t.Errorf("Current(%s) = %v does not contain now", tt.now, cur)
			}
			if open && tt.cur[0] != "" {
				want := Window{Start: ts(t, tt.cur[0]), End: ts(t, tt.cur[1])}
				if !cur.Start.Equal(want.Start) || !cur.End.Equal(want.End) {
					t.Errorf("Current(%s) = [%s, %s); want [%s, %s)", tt.now, cur.Start, cur.End, want.Start, want.End)
				}
			}
			if !open && !cur.IsZero() {
				t.Errorf("Current(%s) = %v with open false; want the zero Window", tt.now, cur)
			}
			if tt.skipNext {
				return
			}
			next := s.Next(now)
			want := Window{Start: ts(t, tt.next[0]), End: ts(t, tt.next[1])}
			if !next.Start.Equal(want.Start) || !next.End.Equal(want.End) {
				t.Errorf("Next(%s) = [%s, %s); want [%s, %s)", tt.now, next.Start, next.End, want.Start, want.End)
			}
			w, o := s.CurrentOrNext(now)
			if o != open || (open && w != cur) || (!open && w != next) {
				t.Errorf("CurrentOrNext(%s) = %v, %v; want the current or next window", tt.now, w, o)
			}
		})
	}
}

// TestAlwaysOpen checks schedules whose windows overlap without a gap: they
// are open at every instant, and the merged window is bounded.
func TestAlwaysOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		d    time.Duration
	}{
		{"0 * * * *", time.Hour},
		{"0 * * * *", 2 * time.Hour},
		{"*/10 * * * *", 15 * time.Minute},
		{"* * * * *", time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.expr+" "+tt.d.String(), func(t *testing.T) {
			t.Parallel()
			s, err := ParseSchedule(tt.expr, tt.d)
			if err != nil {
				t.Fatal(err)
			}
			base := ts(t, "2026-02-28T23:00:00Z")
			for i := range 50 {
				now := base.Add(time.Duration(i) * 7919 * time.Millisecond)
				w, ok := s.Current(now)
				if !ok || !w.Contains(now) {
					t.Fatalf("Current(%s) = %v, %v; want an open window containing now", now, w, ok)
				}
				if w.End.Sub(w.Start) < time.Hour {
					t.Fatalf("Current(%s) = %v; want overlapping windows merged", now, w)
				}
			}
		})
	}
}
