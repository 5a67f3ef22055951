package proxyapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/safeperm"
)

// ErrInvalidTokens is wrapped by every error about the enrollment token
// configuration.
var ErrInvalidTokens = errors.New("invalid enrollment tokens")

// ErrUnsafeTokensFile is wrapped by the error about a tokens file that
// others than its owner may read or change: it holds secrets.
var ErrUnsafeTokensFile = errors.New("unsafe tokens file")

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
	// MaxHosts, when positive, is the most hosts the token's group may
	// hold in the census: a report that would add one more is refused
	// (403).
	MaxHosts int `yaml:"max_hosts"`
	// NewHostsPerHour, when positive, is the most hosts the token's group
	// may gain in any hour: more new hosts are refused (429) until the
	// hour has passed. A leaked token then cannot fill the census.
	NewHostsPerHour int `yaml:"new_hosts_per_hour"`
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
//	    max_hosts: 5000          # optional quotas, 0 or absent: none
//	    new_hosts_per_hour: 500
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

// LoadTokens reads and parses the tokens file at path. The file must be
// safe to hold secrets (see readTokensFile); otherwise the error wraps
// ErrUnsafeTokensFile.
func LoadTokens(path string) ([]Token, error) {
	data, _, err := readTokensFile(path)
	if err != nil {
		return nil, err
	}
	toks, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("parse tokens %s: %w", path, err)
	}
	return toks, nil
}

// readTokensFile reads the tokens file at path and returns its content and
// its version: a hash of the content, mode and owner, so that a chmod is
// noticed as a change. The opened file must follow the rule key files in
// keys.d follow (a regular file, not group- or world-writable, owned by
// root or the current user) and, since it holds secrets, be neither group-
// nor world-readable. A symlink is followed (the path is the operator's
// choice; Kubernetes secret volumes are symlinks); the file it leads to is
// checked. A FIFO is refused without blocking. When the file cannot be
// read, version identifies the error instead.
func readTokensFile(path string) (data []byte, version [sha256.Size]byte, err error) {
	defer func() {
		if err != nil {
			version = sha256.Sum256([]byte("unreadable: " + err.Error()))
		}
	}()
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, version, fmt.Errorf("read tokens: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, version, fmt.Errorf("read tokens: %w", err)
	}
	if reason := tokensFileReason(fi); reason != "" {
		return nil, version, fmt.Errorf("%w %s: %s; it holds secrets: make it mode 0600, owned by root or the proxy's user",
			ErrUnsafeTokensFile, path, reason)
	}
	if data, err = capread.All(f, MaxTokensFileSize); err != nil {
		return nil, version, fmt.Errorf("read tokens %s: %w", path, err)
	}
	var uid uint32
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid = st.Uid
	}
	h := sha256.New()
	h.Write(data)
	fmt.Fprintf(h, "\x00%o:%d", fi.Mode(), uid)
	h.Sum(version[:0])
	return data, version, nil
}

// tokensFileReason returns why the opened tokens file fi may not hold
// tokens, or "".
func tokensFileReason(fi fs.FileInfo) string {
	if reason := safeperm.Reason(fi, false, os.Geteuid()); reason != "" {
		return reason
	}
	if perm := fi.Mode().Perm(); perm&0o044 != 0 {
		return fmt.Sprintf("mode %#o is group/world-readable", perm)
	}
	return ""
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
	quota api.Quota
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
		if t.MaxHosts < 0 || t.NewHostsPerHour < 0 {
			return nil, fmt.Errorf("%w: tokens[%d]: max_hosts and new_hosts_per_hour must not be negative", ErrInvalidTokens, i)
		}
		e := tokenEntry{hash: h, group: t.Group, admin: t.Admin,
			quota: api.Quota{MaxHosts: t.MaxHosts, NewHostsPerHour: t.NewHostsPerHour}}
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

// parseCIDR accepts a prefix or a single address. An IPv4-mapped IPv6
// prefix (::ffff:10.0.0.0/104) becomes the IPv4 prefix it maps (10.0.0.0/8):
// client addresses are compared unmapped, so as written it would match no
// client at all.
func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: %w", s, err)
		}
		return unmapPrefix(p.Masked()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or address: %w", s, err)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// unmapPrefix turns a masked IPv4-mapped prefix into its IPv4 prefix. A
// masked prefix whose address is IPv4-mapped has at least 96 bits (the
// ::ffff: part is bits 80 to 95), so it always maps to an IPv4 prefix.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if !p.Addr().Is4In6() || p.Bits() < 96 {
		return p
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
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

// Failure rate limiting for authenticated endpoints. Only failed requests
// count: a valid token is accepted whatever others did from its address.
const (
	// failBurst is how many authentication failures a client (an IPv4
	// address or IPv6 /64) may have before its failures get 429.
	failBurst = 10
	// failRefill is how often one failure is forgiven.
	failRefill = 6 * time.Second
	// maxLimitedAddrs bounds the limiter's memory.
	maxLimitedAddrs = 10000
)

// failLimiter is a token bucket per client that only failures drain. A
// client is an IPv4 address or an IPv6 /64 (see limitKey). It is bounded:
// when full, fully refilled buckets are dropped and then arbitrary ones.
type failLimiter struct {
	mu      sync.Mutex
	buckets map[netip.Prefix]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newFailLimiter() *failLimiter {
	return &failLimiter{buckets: make(map[netip.Prefix]*bucket)}
}

// limitKey is the bucket of addr: the address for IPv4, its /64 for IPv6.
// A single IPv6 host is usually given a whole /64, so a bucket per address
// would let it try 2^64 times as often.
func limitKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64) // cannot fail for an IPv6 address
		return p
	}
	return netip.PrefixFrom(addr, addr.BitLen())
}

// refill brings b up to date at now.
func (b *bucket) refill(now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(failBurst, b.tokens+float64(el)/float64(failRefill))
		b.last = now
	}
}

// blocked reports whether addr's client has no failures left, and if so
// how long until one is forgiven.
func (l *failLimiter) blocked(addr netip.Addr, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[limitKey(addr)]
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

// fail records a failure from addr's client and reports whether it used
// the client's last one (it is blocked from now on).
func (l *failLimiter) fail(addr netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := limitKey(addr)
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxLimitedAddrs {
			l.evict(now)
		}
		b = &bucket{tokens: failBurst, last: now}
		l.buckets[key] = b
	}
	b.refill(now)
	wasOpen := b.tokens >= 1
	b.tokens = max(0, b.tokens-1)
	return wasOpen && b.tokens < 1
}

// evict drops refilled buckets, and if none were, one arbitrary bucket.
func (l *failLimiter) evict(now time.Time) {
	for k, b := range l.buckets {
		b.refill(now)
		if b.tokens >= failBurst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < maxLimitedAddrs {
		return
	}
	for k := range l.buckets {
		delete(l.buckets, k)
		return
	}
}

// len returns the number of tracked clients (tests).
func (l *failLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
