package updater

import (
	"errors"
	"testing"
	"time"
)

func TestUpdaterStateAdopt(t *testing.T) {
	tests := []struct {
		name   string
		in     UpdaterState
		want   UpdaterState
		refuse bool
	}{
		{"file from before self-update", UpdaterState{}, UpdaterState{Version: "1.5.0", Format: StateFormat, FormatBy: "1.5.0"}, false},
		{"same format keeps its writer", UpdaterState{Version: "1.0.0", Format: StateFormat, FormatBy: "1.0.0"}, UpdaterState{Version: "1.5.0", Format: StateFormat, FormatBy: "1.0.0"}, false},
		{"newer format refused", UpdaterState{Version: "2.0.0", Format: StateFormat + 1, FormatBy: "2.0.0"}, UpdaterState{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.in
			err := s.adopt("1.5.0")
			if tt.refuse {
				if !errors.Is(err, ErrSelfUpdate) || s != tt.in {
					t.Fatalf("adopt = %v, state %+v; want a refusal that changes nothing", err, s)
				}
				return
			}
			if err != nil || s != tt.want {
				t.Fatalf("adopt = %v, %+v; want %+v", err, s, tt.want)
			}
		})
	}
}

func TestUpdaterStateRecord(t *testing.T) {
	now := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	var s UpdaterState
	s.Switching = &SelfSwitch{From: "1.0.0", To: "1.5.0"}
	s.record(s.Switching, nil, now)
	if s.Switching != nil || s.Last == nil || !s.Last.Success || s.Last.From != "1.0.0" || s.Last.To != "1.5.0" || !s.Last.Time.Equal(now) {
		t.Fatalf("after a success: %+v %+v", s, s.Last)
	}
	s.Switching = &SelfSwitch{From: "1.5.0", To: "1.6.0"}
	s.record(s.Switching, &SelfUpdateResult{From: "1.5.0", To: "1.6.0", ErrorCode: CodeSelfUpdate, Error: "boom", Success: true}, now)
	if s.Switching != nil || s.Last.Success || s.Last.ErrorCode != CodeSelfUpdate || s.Last.Error != "boom" {
		t.Fatalf("after a failure: %+v %+v", s, s.Last)
	}
	prev := s.Last
	s.record(nil, nil, now.Add(time.Hour))
	if s.Last != prev {
		t.Fatal("a setup with no self-update under way changed the last outcome")
	}
}

func TestNewer(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"1.5.0", "1.0.0", true}, {"1.0.0", "1.5.0", false}, {"1.5.0", "1.5.0", false},
		{"1.0.0", "0.0.0-dev", true}, {"1.0.0", "", true}, {"", "1.0.0", false}, {"junk", "1.0.0", false},
	} {
		if got := newer(tt.a, tt.b); got != tt.want {
			t.Errorf("newer(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
