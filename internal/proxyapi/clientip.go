package proxyapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// MaxTrustedProxies caps the --trusted-proxies list.
const MaxTrustedProxies = 64

// ParseTrustedProxies parses a comma-separated list of CIDRs or single
// addresses (the value of --trusted-proxies). IPv4-mapped IPv6 prefixes are
// turned into IPv4 ones, as token CIDRs are. An empty list is valid.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := parseCIDR(item)
		if err != nil {
			return nil, fmt.Errorf("trusted proxies: %w", err)
		}
		out = append(out, p)
	}
	if len(out) > MaxTrustedProxies {
		return nil, fmt.Errorf("trusted proxies: %d entries, at most %d are allowed", len(out), MaxTrustedProxies)
	}
	return out, nil
}

// clientAddr returns the address r comes from, as token CIDRs and the
// failure limiter see it: the TCP peer; or, when the peer is one of
// Config.TrustedProxies (a load balancer in front of this server), the
// client that proxy names in X-Forwarded-For (see forwardedClient). Only
// X-Forwarded-For is read; the PROXY protocol and the Forwarded header are
// not supported.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	peer := remoteAddr(r)
	if !s.isTrustedProxy(peer) {
		return peer // its forwarding headers are the client's own claims
	}
	return forwardedClient(r.Header.Values("X-Forwarded-For"), peer, s.isTrustedProxy)
}

// isTrustedProxy reports whether addr is in Config.TrustedProxies.
func (s *Server) isTrustedProxy(addr netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// forwardedClient reads the X-Forwarded-For chain (header lines in order,
// each a comma-separated list) of a request a trusted proxy sent. Each
// proxy appends the address it received the request from, so the chain is
// read from the right: an entry is believed only while it was appended by a
// trusted proxy, and the first entry that is not a trusted proxy is the
// client. Entries left of it came from the client and are ignored. When
// every entry is a trusted proxy, the leftmost one is the client. Without
// the header, or at an entry that is not an address, the answer is peer.
func forwardedClient(headers []string, peer netip.Addr, trusted func(netip.Addr) bool) netip.Addr {
	var chain []string
	for _, h := range headers {
		chain = append(chain, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(chain) - 1; i >= 0; i-- {
		a, ok := parseForwarded(chain[i])
		if !ok {
			return peer
		}
		client = a
		if !trusted(a) {
			break
		}
	}
	return client
}

// parseForwarded parses one X-Forwarded-For entry: an address, or an
// address with a port as some balancers write it (1.2.3.4:5678,
// [2001:db8::1]:5678).
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
