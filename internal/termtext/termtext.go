// Package termtext makes text that came from outside safe to print on a
// terminal: escape sequences and control characters are removed, so an
// error message from a proxy or a previous run cannot move the cursor,
// retitle the window, rewrite the screen or hide what follows it.
package termtext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Control characters that start a sequence a terminal interprets.
const (
	esc = 0x1b
	bel = 0x07
	// The 8-bit (C1) forms of CSI, OSC, DCS, SOS, PM, APC and ST.
	c1CSI = 0x9b
	c1OSC = 0x9d
	c1DCS = 0x90
	c1SOS = 0x98
	c1PM  = 0x9e
	c1APC = 0x9f
	c1ST  = 0x9c
)

// Strip returns s as one line of printable text. Escape sequences (CSI,
// OSC and the other string sequences, in their ESC and C1 forms) are
// removed with their parameters and payload; tab, newline and carriage
// return become a space; every other C0 or C1 control, DEL, and every
// invisible format character (bidirectional overrides, zero-width ones) is
// dropped. Invalid UTF-8 becomes U+FFFD. Printable Unicode is kept as is.
func Strip(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteRune(utf8.RuneError)
		case r == esc:
			i = skipEscape(s, i)
		case r == c1CSI:
			i = skipCSI(s, i)
		case r == c1OSC || r == c1DCS || r == c1SOS || r == c1PM || r == c1APC:
			i = skipString(s, i)
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r == ' ' || unicode.IsGraphic(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isPlain reports whether s is printable ASCII only, the common case.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// skipEscape skips what follows an ESC at s[i:] and returns the index after
// the sequence.
func skipEscape(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[':
		return skipCSI(s, i+1)
	case ']', 'P', 'X', '^', '_':
		return skipString(s, i+1)
	}
	// Other escapes: intermediate bytes, then one final byte.
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipCSI skips the parameter and intermediate bytes of a control sequence
// and its final byte. A byte that cannot be part of the sequence ends it
// and is not skipped.
func skipCSI(s string, i int) int {
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipString skips the payload of an OSC, DCS, SOS, PM or APC sequence up
// to and including its terminator (BEL, ESC \ or C1 ST), or to the end of
// s when it has none: a terminal would swallow that text too.
func skipString(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == bel || r == c1ST:
			return i + n
		case r == esc:
			if i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
			// Another sequence starts: the caller strips it.
			return i
		}
		i += n
	}
	return i
}
