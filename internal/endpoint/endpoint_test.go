package endpoint

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestValidateHostPort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"proxy.example.com", true},
		{"proxy.example.com:443", true},
		{"proxy.example.com:3080", true},
		{"127.0.0.1", true},
		{"127.0.0.1:3080", true},
		{"[::1]", true},
		{"[::1]:443", true},
		{"[2001:db8::1]:65535", true},
		{"localhost:1", true},
		{strings.Repeat("a", MaxHostPortLength), true},

		{"", false},
		{strings.Repeat("a", MaxHostPortLength+1), false},
		{"https://proxy.example.com", false},
		{"https://proxy.example.com:443/", false},
		{"ftp://proxy.example.com", false},
		{"proxy.example.com/path", false},
		{"proxy.example.com/", false},
		{"user@proxy.example.com", false},
		{"proxy.example.com?x=1", false},
		{"proxy.example.com#f", false},
		{"pro xy", false},
		{" proxy", false},
		{"proxy\n", false},
		{"::1", false}, // IPv6 needs brackets
		{"[::1", false},
		{"proxy:", false},
		{"proxy:0", false},
		{"proxy:65536", false},
		{"proxy:99999", false},
		{"proxy:123456", false},
		{"proxy:http", false},
		{"[::1]:0", false},
		{"[fe80::1%eth0]:443", false},
		{"[0]", false},
		{"[127.0.0.1]:443", false}, // brackets are for IPv6
		{"[::ffff:127.0.0.1]:443", true},
		{"[::]", true},
	}
	for _, tt := range tests {
		err := ValidateHostPort(tt.in)
		switch {
		case tt.ok && err != nil:
			t.Errorf("ValidateHostPort(%q) = %v, want nil", tt.in, err)
		case !tt.ok && !errors.Is(err, ErrInvalidHostPort):
			t.Errorf("ValidateHostPort(%q) = %v, want ErrInvalidHostPort", tt.in, err)
		}
	}
}

func TestValidateQuotesBriefly(t *testing.T) {
	t.Parallel()
	err := ValidateHostPort("https://" + strings.Repeat("x", 1000))
	if err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "not HOST[:PORT]") {
		t.Errorf("Validate of a long URL = %v", err)
	}
}

func TestValidateBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantErr error
	}{
		{"https://cdn.teleport.dev", nil},
		{"https://cdn.teleport.dev/", nil},
		{"HTTPS://cdn.teleport.dev/", nil},
		{"https://127.0.0.1:8443/mirror/teleport", nil},
		{"https://[::1]/x/", nil},
		{"http://cdn.teleport.dev", ErrInsecureURL},
		{"HTTP://cdn.teleport.dev", ErrInsecureURL},
		{"ftp://cdn.teleport.dev", ErrInvalidBaseURL},
		{"cdn.teleport.dev", ErrInvalidBaseURL},
		{"//cdn.teleport.dev", ErrInvalidBaseURL},
		{"https://", ErrInvalidBaseURL},
		{"https:///path", ErrInvalidBaseURL},
		{"https://:443/", ErrInvalidBaseURL},
		{"https:cdn.teleport.dev", ErrInvalidBaseURL},
		{"https://user:pw@cdn.teleport.dev/", ErrInvalidBaseURL},
		{"https://cdn.teleport.dev/?x=1", ErrInvalidBaseURL},
		{"https://cdn.teleport.dev/?", ErrInvalidBaseURL},
		{"https://cdn.teleport.dev/#frag", ErrInvalidBaseURL},
		{"https://cdn.teleport.dev/#", ErrInvalidBaseURL},
		{"https://cdn.teleport.dev/a/../b", ErrInvalidBaseURL},
		{"https://cdn.teleport.dev/..", ErrInvalidBaseURL},
		{"https://cdn.teleport.dev/./teleport", ErrInvalidBaseURL},
		{"https://cdn.teleport.dev/%zz", ErrInvalidBaseURL},
		{"https://cdn teleport.dev/", ErrInvalidBaseURL},
		{"", ErrInvalidBaseURL},
		{"https://cdn.teleport.dev/" + strings.Repeat("a", MaxBaseURLLength), ErrInvalidBaseURL},
	}
	for _, tt := range tests {
		if err := ValidateBaseURL(tt.in); !errors.Is(err, tt.wantErr) {
			t.Errorf("ValidateBaseURL(%q) = %v, want %v", tt.in, err, tt.wantErr)
		}
	}
}

func FuzzValidateHostPort(f *testing.F) {
	for _, s := range []string{"proxy.example.com:443", "[::1]:3080", "127.0.0.1", "https://p", "p/x", "u@p", "p:0", "::1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateHostPort(s) != nil {
			return
		}
		if strings.ContainsAny(s, "/\\?#@% \t\r\n") || strings.Contains(s, "://") {
			t.Fatalf("ValidateHostPort accepted %q with URL syntax", s)
		}
		u, err := url.Parse("https://" + s + "/v1/webapi/find")
		if err != nil || u.Host != s || u.Path != "/v1/webapi/find" || u.User != nil {
			t.Fatalf("accepted %q does not stay the host of a URL: %+v, %v", s, u, err)
		}
	})
}
