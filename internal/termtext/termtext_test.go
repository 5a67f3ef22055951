package termtext

import (
	"strings"
	"testing"
	"unicode"
)

func TestStrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, want string
	}{
		{"plain", "connection refused", "connection refused"},
		{"unicode kept", "Größe ✓ 日本語 — ok", "Größe ✓ 日本語 — ok"},
		{"SGR colour", "\x1b[31mred\x1b[0m text", "red text"},
		{"clear screen and home", "a\x1b[2J\x1b[Hb", "ab"},
		{"private mode", "\x1b[?25lhidden cursor", "hidden cursor"},
		{"OSC title with BEL", "\x1b]0;pwned\x07after", "after"},
		{"OSC hyperlink with ST", "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"},
		{"OSC ended by another escape", "\x1b]0;t\x1b[1mx", "x"},
		{"unterminated OSC", "ok \x1b]0;never ends", "ok "},
		{"DCS", "\x1bPq#0;2;0;0;0\x1b\\done", "done"},
		{"charset designation", "\x1b(Bx", "x"},
		{"reset", "\x1bcx", "x"},
		{"lone ESC at end", "x\x1b", "x"},
		{"C1 CSI", "\u009b31mred", "red"},
		{"C1 OSC", "\u009d0;t\u009cx", "x"},
		{"raw 8-bit CSI byte", "a\x9b31mb", "a\uFFFD31mb"},
		{"C0 controls", "a\x00b\x07c\x08d\x7fe", "abcde"},
		{"newlines become spaces", "line1\nline2\r\tx", "line1 line2  x"},
		{"bidi override", "abc\u202edcba", "abcdcba"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Strip(tc.in); got != tc.want {
				t.Errorf("Strip(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzStrip(f *testing.F) {
	for _, s := range []string{"\x1b[31mx", "\x1b]0;t\x07", "\u009b1m", "a\x9bb", "\x1bP\x1b\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Strip(s)
		if strings.ContainsFunc(out, func(r rune) bool { return r != ' ' && !unicode.IsGraphic(r) }) {
			t.Fatalf("Strip(%q) = %q keeps a control character", s, out)
		}
		if Strip(out) != out {
			t.Fatalf("Strip is not idempotent on %q", s)
		}
	})
}
