package version

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"16.4.6", false},
		{"17.0.0-beta.1", false},
		{"17.0.0-dev.abcdef.123", false},
		{"1.2.3+build.5", false},
		{"0.0.1", false},
		{"1.0.0-" + strings.Repeat("a", MaxLength-6), false}, // exactly MaxLength bytes
		{"1.0.0-" + strings.Repeat("a", MaxLength-5), true},  // one byte over
		{"v16.4.6", true},
		{"16.4", true},
		{"16", true},
		{"", true},
		{"16.4.6/../../evil", true},
		{"16.4.6?x=1", true},
		{"16.4.6#frag", true},
		{"16.4.6 ", true},
		{" 16.4.6", true},
		{"16.4.6\n", true},
		{"016.4.6", true},
		{"16.4.6-", true},
		{"16.4.6-a..b", true},
		{"16.4.6-%2e%2e", true},
		{"https://16.4.6", true},
	}
	for _, tt := range tests {
		v, err := Parse(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%q) = %v, %v; want ErrInvalid", tt.in, v, err)
			} else if q := quote(tt.in); !strings.Contains(err.Error(), q) {
				t.Errorf("Parse(%q) error %q does not quote the input as %s", tt.in, err, q)
			}
			continue
		}
		if err != nil || v.String() != tt.in {
			t.Errorf("Parse(%q) = %v, %v; want the version back", tt.in, v, err)
		}
	}
}

func TestQuoteTruncates(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 1000)
	if got := quote(long); len(got) > maxQuoted+32 || !strings.Contains(got, "1000 bytes") {
		t.Errorf("quote of 1000 bytes = %q", got)
	}
	if got, want := quote("1.2"), `"1.2"`; got != want {
		t.Errorf("quote(%q) = %s, want %s", "1.2", got, want)
	}
}
