package verify

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// ParseChecksum parses a checksum file in the strict sha256sum text format the
// releases use: exactly one line "<64 lowercase hex>  <file name>\n" (two
// spaces). It returns the digest and the file name.
//
// Deliberately refused, each with an error wrapping ErrChecksumFormat that
// names the problem: more than MaxChecksumSize bytes (ErrInputTooLarge), a missing
// final newline, CRLF line ends, more than one line, uppercase or short hex,
// a single space, sha256sum's binary-mode marker " *" (the release tooling never
// writes it, and accepting two spellings of one signed statement buys nothing),
// and file names that are empty, ".", "..", or contain "/", NUL, control
// characters or invalid UTF-8.
func ParseChecksum(b []byte) (sumHex, fileName string, err error) {
	if len(b) > MaxChecksumSize {
		return "", "", fmt.Errorf("parse checksum: %w: %d bytes, limit %d", ErrInputTooLarge, len(b), MaxChecksumSize)
	}
	if len(b) == 0 {
		return "", "", fmt.Errorf("parse checksum: %w: empty file", ErrChecksumFormat)
	}
	if b[len(b)-1] != '\n' {
		return "", "", fmt.Errorf("parse checksum: %w: missing final newline", ErrChecksumFormat)
	}
	line := b[:len(b)-1]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		return "", "", fmt.Errorf("parse checksum: %w: more than one line", ErrChecksumFormat)
	}
	if bytes.HasSuffix(line, []byte{'\r'}) {
		return "", "", fmt.Errorf("parse checksum: %w: CRLF line ending", ErrChecksumFormat)
	}
	const hexLen = 64
	if len(line) < hexLen {
		return "", "", fmt.Errorf("parse checksum: %w: line too short for a SHA-256 digest", ErrChecksumFormat)
	}
	for i, c := range line[:hexLen] {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			return "", "", fmt.Errorf("parse checksum: %w: uppercase hex digit at offset %d", ErrChecksumFormat, i)
		default:
			return "", "", fmt.Errorf("parse checksum: %w: digest is not 64 hex digits (byte %q at offset %d)", ErrChecksumFormat, c, i)
		}
	}
	rest := line[hexLen:]
	switch {
	case bytes.HasPrefix(rest, []byte("  ")):
		rest = rest[2:]
	case bytes.HasPrefix(rest, []byte(" *")):
		return "", "", fmt.Errorf("parse checksum: %w: binary-mode marker \" *\" is not accepted, want two spaces", ErrChecksumFormat)
	default:
		return "", "", fmt.Errorf("parse checksum: %w: digest must be followed by exactly two spaces", ErrChecksumFormat)
	}
	if err := checkFileName(rest); err != nil {
		return "", "", fmt.Errorf("parse checksum: %w: %v", ErrChecksumFormat, err)
	}
	return string(line[:hexLen]), string(rest), nil
}

func checkFileName(name []byte) error {
	switch string(name) {
	case "":
		return fmt.Errorf("empty file name")
	case ".", "..":
		return fmt.Errorf("file name %q is not a file", name)
	}
	if !utf8.Valid(name) {
		return fmt.Errorf("file name is not valid UTF-8")
	}
	for _, r := range string(name) {
		switch {
		case r == '/':
			return fmt.Errorf("file name %q contains '/'", name)
		case r == 0:
			return fmt.Errorf("file name contains NUL")
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("file name %q contains control character %U", name, r)
		}
	}
	if name[0] == ' ' {
		return fmt.Errorf("digest must be followed by exactly two spaces")
	}
	return nil
}
