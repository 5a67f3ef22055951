package proxyapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/api"
)

func TestForwardedClient(t *testing.T) {
	t.Parallel()
	peer := netip.MustParseAddr("10.0.0.1")
	trusted := func(a netip.Addr) bool { return netip.MustParsePrefix("10.0.0.0/24").Contains(a) }
	tests := []struct {
		name    string
		headers []string
		want    string
	}{
		{"no header", nil, "10.0.0.1"},
		{"one client", []string{"192.0.2.7"}, "192.0.2.7"},
		{"client claims are ignored", []string{"198.51.100.1, 192.0.2.7"}, "192.0.2.7"},
		{"through two trusted hops", []string{"198.51.100.1, 192.0.2.7, 10.0.0.9"}, "192.0.2.7"},
		{"header lines in order", []string{"198.51.100.1", "192.0.2.7"}, "192.0.2.7"},
		{"only trusted hops", []string{"10.0.0.8, 10.0.0.9"}, "10.0.0.8"},
		{"with a port", []string{"192.0.2.7:5678"}, "192.0.2.7"},
		{"IPv6 with a port", []string{"[2001:db8::7]:5678"}, "2001:db8::7"},
		{"IPv4-mapped", []string{"::ffff:192.0.2.7"}, "192.0.2.7"},
		{"garbage", []string{"unknown"}, "10.0.0.1"},
		{"garbage past a trusted hop", []string{"192.0.2.7, bogus, 10.0.0.9"}, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := forwardedClient(tt.headers, peer, trusted); got.String() != tt.want {
				t.Errorf("forwardedClient(%q) = %s; want %s", tt.headers, got, tt.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	t.Parallel()
	got, err := ParseTrustedProxies(" 10.0.0.0/8, 2001:db8::/32,192.0.2.7,::ffff:198.51.100.0/120, ")
	want := "[10.0.0.0/8 2001:db8::/32 192.0.2.7/32 198.51.100.0/24]"
	if err != nil || fmt.Sprint(got) != want {
		t.Errorf("ParseTrustedProxies = %v, %v; want %s", got, err, want)
	}
	if got, err := ParseTrustedProxies(""); err != nil || len(got) != 0 {
		t.Errorf("ParseTrustedProxies(\"\") = %v, %v; want none", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "balancer.example.com", strings.Repeat("10.0.0.1,", MaxTrustedProxies+1)} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%.40q) succeeded", bad)
		}
	}
}

// xff returns a Bearer header for tok with X-Forwarded-For set to chain.
func xff(tok, chain string) http.Header {
	h := bearer(tok)
	h.Set("X-Forwarded-For", chain)
	return h
}

// TestTrustedProxies runs census requests through a "load balancer" at
// 127.0.0.1 (the test client) that names the client in X-Forwarded-For: a
// token restricted to 10.0.0.0/8 is accepted for a client there only when
// the balancer is trusted, and a client cannot claim an address itself.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	report := strings.NewReader(validReport)
	untrusted := newEnv(t, func(c *Config) { c.Tokens = testTokens(); c.Census = &fakeCensus{} })
	if code, _, _ := untrusted.do(t, http.MethodPost, api.CensusPath, report, xff(remoteToken, "10.1.2.3")); code != http.StatusForbidden {
		t.Errorf("X-Forwarded-For from an untrusted peer = %d; want 403 (the header ignored)", code)
	}
	trusted := newEnv(t, func(c *Config) {
		c.Tokens = testTokens()
		c.Census = &fakeCensus{}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	for _, tc := range []struct {
		chain string
		code  int
	}{
		{"10.1.2.3", http.StatusAccepted},
		{"10.1.2.3, 127.0.0.5", http.StatusAccepted},       // through a second trusted hop
		{"10.1.2.3, 192.0.2.7", http.StatusForbidden},      // the client made up 10.1.2.3
		{"", http.StatusForbidden},                         // the balancer's own request: 127.0.0.1
		{"::ffff:10.1.2.3", http.StatusAccepted},           // IPv4-mapped
		{"2001:db8::1, 10.1.2.3", http.StatusAccepted},     // what the client claims does not matter
		{"not-an-address, 10.1.2.3", http.StatusAccepted},  // nor whether it parses
		{"10.1.2.3, not-an-address", http.StatusForbidden}, // the balancer's entry must
	} {
		h := xff(remoteToken, tc.chain)
		if tc.chain == "" {
			h.Del("X-Forwarded-For")
		}
		if code, _, body := trusted.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), h); code != tc.code {
			t.Errorf("X-Forwarded-For %q from a trusted peer = %d %s; want %d", tc.chain, code, body, tc.code)
		}
	}
}

// TestFailLimiterIPv6Prefix checks two IPv6 addresses of one /64 share a
// bucket, end to end through a trusted balancer, and that another /64 and
// IPv4 addresses have their own.
func TestFailLimiterIPv6Prefix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.Tokens = testTokens()
		c.Census = &fakeCensus{}
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	bad := "wrong-token-wrong-token-wrong-token"
	for i := range failBurst {
		if code, _, _ := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), xff(bad, "2001:db8:1:2::1")); code != 401 {
			t.Fatalf("failure %d = %d; want 401", i, code)
		}
	}
	for _, tc := range []struct {
		client string
		code   int
	}{
		{"2001:db8:1:2::1", 429},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", 429}, // same /64
		{"2001:db8:1:3::1", 401},                  // the next /64
		{"192.0.2.1", 401},
		{"192.0.2.2", 401},
	} {
		if code, _, _ := e.do(t, http.MethodPost, api.CensusPath, strings.NewReader(validReport), xff(bad, tc.client)); code != tc.code {
			t.Errorf("bad token from %s = %d; want %d", tc.client, code, tc.code)
		}
	}

	l := newFailLimiter()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for range failBurst {
		l.fail(a, now)
	}
	if _, blocked := l.blocked(b, now); !blocked || l.len() != 1 {
		t.Errorf("after %d failures of %s, %s blocked = %v with %d buckets; want one shared bucket", failBurst, a, b, blocked, l.len())
	}
}
