package api

import (
	"regexp"
	"testing"
)

// The regular expressions the hand-written checks replaced; the checks
// must agree with them on every input.
var replacedPatterns = []struct {
	name  string
	re    *regexp.Regexp
	check func(string) bool
}{
	{"host id", regexp.MustCompile(`^[0-9a-f]{64}$`), ValidHostID},
	{"word", regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,31}$`), ValidWord},
	{"error code", regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`), ValidErrorCode},
	{"updater id", regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`), ValidUpdaterID},
}

var matchSeeds = []string{
	"", "a", "A", "_a", "a_", "ubuntu", "x86_64", "health_check", "net.timeout-1", ".a", "-a",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeF",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
	"123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-42661417400g",
	"123e4567e-89b-12d3-a456-426614174000", "123E4567-e89b-12d3-a456-426614174000",
	"abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz0123456",
	"a\n", "\u00e9t\u00e9", "a\x00",
}

func TestChecksMatchReplacedPatterns(t *testing.T) {
	long := make([]byte, 0, 70)
	for i := range 70 {
		long = append(long, 'a')
		matchSeeds = append(matchSeeds, string(long[:i+1]))
	}
	for _, s := range matchSeeds {
		for _, p := range replacedPatterns {
			if got, want := p.check(s), p.re.MatchString(s); got != want {
				t.Errorf("%s %q: check says %v, the pattern %v", p.name, s, got, want)
			}
		}
	}
}

func FuzzChecksMatchReplacedPatterns(f *testing.F) {
	for _, s := range matchSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range replacedPatterns {
			if got, want := p.check(s), p.re.MatchString(s); got != want {
				t.Fatalf("%s %q: check says %v, the pattern %v", p.name, s, got, want)
			}
		}
	})
}
