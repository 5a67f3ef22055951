// Package version parses the version strings teleport-update trusts: the
// proxy's target, a version directory's name, a census report's versions and
// a policy's target_version all go through Parse, so every part of the
// system accepts and refuses exactly the same strings.
package version

import (
	"errors"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// MaxLength bounds a version string; Teleport's longest real versions
// ("17.0.0-dev.abcdef.123") are far below it.
const MaxLength = 128

// maxQuoted bounds how much of a bad input an error message repeats.
const maxQuoted = 64

// ErrInvalid means a version string is not a strict semantic version in
// canonical form, or is longer than MaxLength.
var ErrInvalid = errors.New("invalid version")

// Parse parses s as a strict semantic version ("16.4.6", "17.0.0-beta.1"):
// no leading "v", no missing parts, at most MaxLength bytes, and no
// characters other than semver's [0-9A-Za-z.+-], so a parsed version can
// never carry path or URL syntax. The error wraps ErrInvalid and quotes s.
func Parse(s string) (*semver.Version, error) {
	if len(s) > MaxLength {
		return nil, fmt.Errorf("%w %s: longer than %d bytes", ErrInvalid, quote(s), MaxLength)
	}
	v, err := semver.StrictNewVersion(s)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrInvalid, quote(s), err)
	}
	// Belt and braces: the canonical form must be the input, and contain
	// nothing but semver characters.
	if v.String() != s || strings.ContainsFunc(s, func(r rune) bool { return !isSemverRune(r) }) {
		return nil, fmt.Errorf("%w %s: not in canonical form", ErrInvalid, quote(s))
	}
	return v, nil
}

// quote returns s quoted for an error message, truncated to a readable
// length.
func quote(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q…(%d bytes)", s[:maxQuoted], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func isSemverRune(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.' || r == '-' || r == '+'
}
