// Package endpoint checks the two addresses a host is configured with: the
// proxy's HOST[:PORT] (the agent's --proxy, install.sh's PROXY_ADDR, where a
// census report goes) and the https:// base URL of the CDN or a mirror. The
// agent, the proxy and the census use these functions alone, so an address
// one side accepts is never refused by another.
package endpoint

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Length limits.
const (
	// MaxHostPortLength bounds a proxy address, as DNS bounds a host name.
	MaxHostPortLength = 255
	// MaxBaseURLLength bounds a configured base URL.
	MaxBaseURLLength = 2048
	// maxQuoted bounds how much of a bad input an error message repeats.
	maxQuoted = 64
)

var (
	// ErrInvalidHostPort means an address is not HOST[:PORT].
	ErrInvalidHostPort = errors.New("invalid address")
	// ErrInvalidBaseURL means a base URL is malformed or carries parts
	// teleport-update refuses (user info, query, fragment, dot segments).
	ErrInvalidBaseURL = errors.New("invalid base URL")
	// ErrInsecureURL means a URL is not https://.
	ErrInsecureURL = errors.New("URL is not https")
)

// hostPortPattern is a host name or IPv4 literal, or a bracketed IPv6
// literal, each with an optional numeric port. It leaves no room for a
// scheme, a path, user info, a query or white space.
var hostPortPattern = regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// ValidateHostPort checks HOST[:PORT]: a host name, an IPv4 address or a
// bracketed IPv6 address, and a port from 1 to 65535 when one is given. A
// scheme ("https://"), a path, user info and an unbracketed IPv6 address
// are refused. Errors wrap ErrInvalidHostPort and quote s.
func ValidateHostPort(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrInvalidHostPort)
	case len(s) > MaxHostPortLength || !hostPortPattern.MatchString(s):
		return fmt.Errorf("%w: %s is not HOST[:PORT]", ErrInvalidHostPort, Quote(s))
	}
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: %s has an invalid port", ErrInvalidHostPort, Quote(s))
		}
		host = h
	}
	// Brackets hold an IPv6 address and nothing else, as in a URL.
	if strings.HasPrefix(s, "[") {
		if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil || !a.Is6() {
			return fmt.Errorf("%w: %s is not HOST[:PORT]: no IPv6 address in brackets", ErrInvalidHostPort, Quote(s))
		}
	}
	return nil
}

// ValidateBaseURL checks a CDN or mirror base URL: it must parse, use
// https, name a host, and carry no user info, query, fragment or dot
// segment. An http:// URL yields an error wrapping ErrInsecureURL; anything
// else wrong wraps ErrInvalidBaseURL.
func ValidateBaseURL(s string) error {
	_, err := ParseBaseURL(s)
	return err
}

// ParseBaseURL is ValidateBaseURL returning the parsed URL.
func ParseBaseURL(s string) (*url.URL, error) {
	if len(s) > MaxBaseURLLength {
		return nil, fmt.Errorf("%w %s: longer than %d bytes", ErrInvalidBaseURL, Quote(s), MaxBaseURLLength)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrInvalidBaseURL, Quote(s), err)
	}
	switch {
	case u.Scheme == "http":
		return nil, fmt.Errorf("base URL %s: %w", Quote(s), ErrInsecureURL)
	case u.Scheme != "https":
		return nil, fmt.Errorf("%w %s: scheme must be https", ErrInvalidBaseURL, Quote(s))
	case u.Opaque != "":
		return nil, fmt.Errorf("%w %s: not a hierarchical URL", ErrInvalidBaseURL, Quote(s))
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w %s: no host", ErrInvalidBaseURL, Quote(s))
	case u.User != nil:
		return nil, fmt.Errorf("%w %s: user info is not allowed", ErrInvalidBaseURL, Quote(s))
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("%w %s: a query is not allowed", ErrInvalidBaseURL, Quote(s))
	case u.Fragment != "" || strings.Contains(s, "#"):
		return nil, fmt.Errorf("%w %s: a fragment is not allowed", ErrInvalidBaseURL, Quote(s))
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("%w %s: dot segments are not allowed", ErrInvalidBaseURL, Quote(s))
		}
	}
	return u, nil
}

// Quote returns s quoted for an error message, truncated to a readable
// length, so untrusted input is never repeated in full.
func Quote(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q…(%d bytes)", s[:maxQuoted], len(s))
	}
	return fmt.Sprintf("%q", s)
}
