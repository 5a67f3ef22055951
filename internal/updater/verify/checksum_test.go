package verify_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

const hex64 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestParseChecksum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       string
		wantName string
		wantErr  error
		wantText string
	}{
		{name: "valid", in: hex64 + "  " + tarball + "\n", wantName: tarball},
		{name: "name with spaces inside", in: hex64 + "  a b.tar.gz\n", wantName: "a b.tar.gz"},
		{name: "empty", in: "", wantErr: verify.ErrChecksumFormat, wantText: "empty"},
		{name: "no newline", in: hex64 + "  " + tarball, wantErr: verify.ErrChecksumFormat, wantText: "newline"},
		{name: "CRLF", in: hex64 + "  " + tarball + "\r\n", wantErr: verify.ErrChecksumFormat, wantText: "CRLF"},
		{name: "two lines", in: hex64 + "  a\n" + hex64 + "  b\n", wantErr: verify.ErrChecksumFormat, wantText: "more than one line"},
		{name: "trailing blank line", in: hex64 + "  a\n\n", wantErr: verify.ErrChecksumFormat, wantText: "more than one line"},
		{name: "uppercase hex", in: strings.ToUpper(hex64) + "  a\n", wantErr: verify.ErrChecksumFormat, wantText: "uppercase"},
		{name: "short hex", in: hex64[:63] + "  a\n", wantErr: verify.ErrChecksumFormat, wantText: "64 hex"},
		{name: "long hex", in: hex64 + "0  a\n", wantErr: verify.ErrChecksumFormat, wantText: "two spaces"},
		{name: "non-hex digit", in: "g" + hex64[1:] + "  a\n", wantErr: verify.ErrChecksumFormat, wantText: "64 hex"},
		{name: "one space", in: hex64 + " a\n", wantErr: verify.ErrChecksumFormat, wantText: "two spaces"},
		{name: "three spaces", in: hex64 + "   a\n", wantErr: verify.ErrChecksumFormat, wantText: "two spaces"},
		{name: "tab", in: hex64 + "\ta\n", wantErr: verify.ErrChecksumFormat, wantText: "two spaces"},
		{name: "binary marker", in: hex64 + " *" + tarball + "\n", wantErr: verify.ErrChecksumFormat, wantText: "binary-mode"},
		{name: "no name", in: hex64 + "  \n", wantErr: verify.ErrChecksumFormat, wantText: "empty file name"},
		{name: "digest only", in: hex64 + "\n", wantErr: verify.ErrChecksumFormat, wantText: "two spaces"},
		{name: "path", in: hex64 + "  dir/" + tarball + "\n", wantErr: verify.ErrChecksumFormat, wantText: "'/'"},
		{name: "absolute path", in: hex64 + "  /" + tarball + "\n", wantErr: verify.ErrChecksumFormat, wantText: "'/'"},
		{name: "dot dot", in: hex64 + "  ..\n", wantErr: verify.ErrChecksumFormat, wantText: "not a file"},
		{name: "NUL", in: hex64 + "  a\x00b\n", wantErr: verify.ErrChecksumFormat, wantText: "NUL"},
		{name: "escape", in: hex64 + "  a\x1b[31mb\n", wantErr: verify.ErrChecksumFormat, wantText: "control character"},
		{name: "DEL", in: hex64 + "  a\x7f\n", wantErr: verify.ErrChecksumFormat, wantText: "control character"},
		{name: "C1 control", in: hex64 + "  a\u009b\n", wantErr: verify.ErrChecksumFormat, wantText: "control character"},
		{name: "invalid UTF-8", in: hex64 + "  a\xffb\n", wantErr: verify.ErrChecksumFormat, wantText: "UTF-8"},
		{name: "too large", in: hex64 + "  " + strings.Repeat("a", verify.MaxChecksumSize) + "\n", wantErr: verify.ErrInputTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sum, name, err := verify.ParseChecksum([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("err = %q, want it to name %q", err, tt.wantText)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseChecksum: %v", err)
			}
			if sum != hex64 || name != tt.wantName {
				t.Errorf("got (%q, %q), want (%q, %q)", sum, name, hex64, tt.wantName)
			}
		})
	}
}

func FuzzParseChecksum(f *testing.F) {
	f.Add([]byte(hex64 + "  " + tarball + "\n"))
	f.Add([]byte(hex64 + " *" + tarball + "\n"))
	f.Add([]byte(hex64 + "  a\r\n"))
	f.Add([]byte(hex64 + "  a/b\n"))
	f.Add([]byte(""))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		defer fuzzwatch.Start()()
		sum, name, err := verify.ParseChecksum(in)
		if err != nil {
			if !errors.Is(err, verify.ErrVerification) {
				t.Fatalf("error does not wrap ErrVerification: %v", err)
			}
			return
		}
		// Accepted input must be exactly the canonical line we would write.
		if canon := sum + "  " + name + "\n"; !bytes.Equal(in, []byte(canon)) {
			t.Fatalf("accepted %q, which is not canonical %q", in, canon)
		}
		if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
			t.Fatalf("accepted digest %q", sum)
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00\n\r") {
			t.Fatalf("accepted file name %q", name)
		}
	})
}
