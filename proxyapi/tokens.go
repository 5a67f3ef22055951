package proxyapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/teleport-update/internal/capread"
	"go.yaml.in/yaml/v3"
)

// ErrInvalidTokens is wrapped by every error about the enrollment token
// configuration.
var ErrInvalidTokens = errors.New("invalid enrollment tokens")

// Token limits.
const (
	// MinTokenLen is the shortest accepted enrollment token.
	MinTokenLen = 32
	// MaxTokenLen is the longest accepted enrollment token (and the longest
	// Authorization value looked at).
	MaxTokenLen = 512
	// MaxTokensFileSize caps the tokens file.
	MaxTokensFileSize = 1 << 20
	// MaxTokenCIDRs caps the CIDRs of one token.
	MaxTokenCIDRs = 64
)

// Token is a static enrollment token as configured.
type Token struct {
	// Token is the secret, at least MinTokenLen characters. Only its
	// SHA-256 is kept once a Server is built.
	Token string `yaml:"token"`
	// Group is the update group the token's agents belong to; it must be in
	// the policy when the token is used. Admin tokens may leave it empty.
	Group string `yaml:"group"`
	// CIDRs, when set, are the only client networks the token is accepted
	// from (e.g. "10.0.0.0/8", "2001:db8::/32", or a single address).
	CIDRs []string `yaml:"cidrs"`
	// Admin tokens may also read the census summary.
	Admin bool `yaml:"admin"`
}

// tokensFile is the YAML shape of a tokens file.
type tokensFile struct {
	Tokens []Token `yaml:"tokens"`
}

// ParseTokens parses a tokens file strictly:
//
//	tokens:
//	  - token: "…at least 32 characters…"
//	    group: staging
//	    cidrs: ["10.0.0.0/8"]
//	    admin: false
//
// It returns an error wrapping ErrInvalidTokens for unknown fields or an
// empty file. Token contents are checked by New (see CheckTokens).
func ParseTokens(data []byte) ([]Token, error) {
	var f tokensFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrInvalidTokens)
		}
		msg := strings.ReplaceAll(err.Error(), "in type proxyapi.Token", "in tokens[]")
		msg = strings.ReplaceAll(msg, "in type proxyapi.tokensFile", "at the top level")
		return nil, fmt.Errorf("%w: %s", ErrInvalidTokens, msg)
	}
	if err := CheckTokens(f.Tokens); err != nil {
		return nil, err
	}
	return f.Tokens, nil
}

// LoadTokens reads and parses the tokens file at path.
func LoadTokens(path string) ([]Token, error) {
	data, err := capread.File(path, MaxTokensFileSize)
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	toks, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("parse tokens %s: %w", path, err)
	}
	return toks, nil
}

// CheckTokens validates tokens without revealing them in errors (tokens are
// named by index): length within [MinTokenLen, MaxTokenLen] and printable
// ASCII without spaces, no duplicates, a valid group name (or none for admin
// tokens), and valid CIDRs.
func CheckTokens(toks []Token) error {
	_, err := compileTokens(toks)
	return err
}

// tokenEntry is a token as the server keeps it: only the hash.
type tokenEntry struct {
	hash  [sha256.Size]byte
	group string
	nets  []netip.Prefix
	admin bool
}

func compileTokens(toks []Token) ([]tokenEntry, error) {
	entries := make([]tokenEntry, 0, len(toks))
	seen := make(map[[sha256.Size]byte]int, len(toks))
	for i, t := range toks {
		if len(t.Token) < MinTokenLen {
			return nil, fmt.Errorf("%w: tokens[%d] is %d characters; at least %d are required", ErrInvalidTokens, i, len(t.Token), MinTokenLen)
		}
		if len(t.Token) > MaxTokenLen {
			return nil, fmt.Errorf("%w: tokens[%d] is longer than %d characters", ErrInvalidTokens, i, MaxTokenLen)
		}
		for _, c := range []byte(t.Token) {
			if c <= ' ' || c > '~' {
				return nil, fmt.Errorf("%w: tokens[%d] has a character outside printable ASCII (or a space)", ErrInvalidTokens, i)
			}
		}
		h := sha256.Sum256([]byte(t.Token))
		if j, dup := seen[h]; dup {
			return nil, fmt.Errorf("%w: tokens[%d] repeats tokens[%d]", ErrInvalidTokens, i, j)
		}
		seen[h] = i
		if t.Group == "" && !t.Admin {
			return nil, fmt.Errorf("%w: tokens[%d].group is required", ErrInvalidTokens, i)
		}
		if t.Group != "" {
			if err := checkName(t.Group); err != nil {
				return nil, fmt.Errorf("%w: tokens[%d].group %v", ErrInvalidTokens, i, err)
			}
		}
		if len(t.CIDRs) > MaxTokenCIDRs {
			return nil, fmt.Errorf("%w: tokens[%d].cidrs has %d entries, at most %d are allowed", ErrInvalidTokens, i, len(t.CIDRs), MaxTokenCIDRs)
		}
		e := tokenEntry{hash: h, group: t.Group, admin: t.Admin}
		for j, c := range t.CIDRs {
			p, err := parseCIDR(c)
			if err != nil {
				return nil, fmt.Errorf("%w: tokens[%d].cidrs[%d]: %v", ErrInvalidTokens, i, j, err)
			}
			e.nets = append(e.nets, p)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// parseCIDR accepts a prefix or a single address.
func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or address: %w", s, err)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// lookupToken returns the entry whose hash matches secret. It compares the
// hash against every configured hash with subtle.ConstantTimeCompare and
// does not stop at a match, so timing reveals neither which token matched
// nor how much of it.
func lookupToken(entries []tokenEntry, secret string) (tokenEntry, bool) {
	h := sha256.Sum256([]byte(secret))
	found := -1
	for i := range entries {
		eq := subtle.ConstantTimeCompare(h[:], entries[i].hash[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return tokenEntry{}, false
	}
	return entries[found], true
}

// allows reports whether the token may be used from addr.
func (e *tokenEntry) allows(addr netip.Addr) bool {
	if len(e.nets) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, n := range e.nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// Failure rate limiting for authenticated endpoints.
const (
	// failBurst is how many authentication failures an address may have
	// before it is refused with 429.
	failBurst = 10
	// failRefill is how often one failure is forgiven.
	failRefill = 6 * time.Second
	// maxLimitedAddrs bounds the limiter's memory.
	maxLimitedAddrs = 10000
)

// failLimiter is a token bucket per client address that only failures
// drain. It is bounded: when full, fully refilled buckets are dropped and
// then arbitrary ones.
type failLimiter struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newFailLimiter() *failLimiter {
	return &failLimiter{buckets: make(map[netip.Addr]*bucket)}
}

// refill brings b up to date at now.
func (b *bucket) refill(now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(failBurst, b.tokens+float64(el)/float64(failRefill))
		b.last = now
	}
}

// blocked reports whether addr has no failures left, and if so how long
// until one is forgiven.
func (l *failLimiter) blocked(addr netip.Addr, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		return 0, false
	}
	b.refill(now)
	if b.tokens >= 1 {
		return 0, false
	}
	wait := time.Duration((1 - b.tokens) * float64(failRefill))
	return max(wait, time.Second), true
}

// fail records a failure from addr.
func (l *failLimiter) fail(addr netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= maxLimitedAddrs {
			l.evict(now)
		}
		b = &bucket{tokens: failBurst, last: now}
		l.buckets[addr] = b
	}
	b.refill(now)
	b.tokens = max(0, b.tokens-1)
}

// evict drops refilled buckets, and if none were, one arbitrary bucket.
func (l *failLimiter) evict(now time.Time) {
	for a, b := range l.buckets {
		b.refill(now)
		if b.tokens >= failBurst {
			delete(l.buckets, a)
		}
	}
	if len(l.buckets) < maxLimitedAddrs {
		return
	}
	for a := range l.buckets {
		delete(l.buckets, a)
		return
	}
}

// len returns the number of tracked addresses (tests).
func (l *failLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
