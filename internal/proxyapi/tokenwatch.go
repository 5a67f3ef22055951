package proxyapi

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// tokenStore holds the enrollment tokens in effect and, when they come
// from a file, what reloading it needs.
type tokenStore struct {
	entries atomic.Pointer[[]tokenEntry]

	// mu serializes reloads; seen is the version of the file (see
	// readTokensFile) last acted on, installed or refused; pending is a
	// version the watcher saw once, acted on when seen again unchanged.
	mu      sync.Mutex
	seen    [sha256.Size]byte
	pending [sha256.Size]byte
}

// tokenEntries returns the tokens in effect.
func (s *Server) tokenEntries() []tokenEntry { return *s.tokens.entries.Load() }

// initAuth puts the configured tokens (Config.Tokens, or the valid and safe
// Config.TokensFile) in effect and checks Config.TrustedProxies.
func (s *Server) initAuth() error {
	s.logs = newLogLimits(s.now)
	toks := s.cfg.Tokens
	if s.cfg.TokensFile != "" {
		if len(toks) > 0 {
			return errors.New("set tokens or a tokens file, not both")
		}
		data, version, err := readTokensFile(s.cfg.TokensFile)
		if err != nil {
			return err
		}
		if toks, err = ParseTokens(data); err != nil {
			return fmt.Errorf("parse tokens %s: %w", s.cfg.TokensFile, err)
		}
		s.tokens.seen = version
	}
	entries, err := compileTokens(toks)
	if err != nil {
		return err
	}
	s.tokens.entries.Store(&entries)
	s.cfg.TrustedProxies = slices.Clone(s.cfg.TrustedProxies)
	for i, p := range s.cfg.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("trusted proxies[%d] is not a valid prefix", i)
		}
		s.cfg.TrustedProxies[i] = unmapPrefix(p.Masked())
	}
	return nil
}

// ReloadTokens reads Config.TokensFile again and puts its tokens in effect
// at once: a token removed from the file is refused from the next request
// on. A file that cannot be read, is invalid, or is unsafe (see LoadTokens)
// is refused: the error is logged and returned, and the tokens in effect
// stay. It returns nil when the file is unchanged or no file is configured.
func (s *Server) ReloadTokens() error { return s.reloadTokens(false) }

// pollTokens is Watch's look at Config.TokensFile. A change takes effect
// once it has been seen unchanged on two polls in a row, so a file caught
// half written is never put in effect (its valid beginning would revoke
// the tokens cut off). Problems are logged (see ReloadTokens).
func (s *Server) pollTokens() {
	_ = s.reloadTokens(true) // logged by reloadTokens
}

// reloadTokens implements ReloadTokens; with stable, a new version of the
// file is acted on only when the previous call saw it too.
func (s *Server) reloadTokens(stable bool) error {
	path := s.cfg.TokensFile
	if path == "" {
		return nil
	}
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	data, version, err := readTokensFile(path)
	if version == s.tokens.seen {
		s.tokens.pending = [sha256.Size]byte{}
		return nil
	}
	if stable && version != s.tokens.pending {
		s.tokens.pending = version
		return nil
	}
	s.tokens.seen, s.tokens.pending = version, [sha256.Size]byte{}
	var toks []Token
	if err == nil {
		if toks, err = ParseTokens(data); err != nil {
			err = fmt.Errorf("parse tokens %s: %w", path, err)
		}
	}
	if err != nil {
		s.logger.Error("Enrollment tokens file refused; the tokens in effect stay.",
			"path", path, "error", err.Error(), "tokens", len(s.tokenEntries()))
		return err
	}
	entries, _ := compileTokens(toks) // ParseTokens checked them
	old := s.tokenEntries()
	s.tokens.entries.Store(&entries)
	s.logger.Info("Enrollment tokens reloaded.", "path", path, "tokens", len(entries),
		"added", countMissing(entries, old), "removed", countMissing(old, entries))
	s.warnTokenGroups(s.Policy())
	return nil
}

// countMissing counts the tokens of a that are not in b.
func countMissing(a, b []tokenEntry) int {
	in := make(map[[sha256.Size]byte]bool, len(b))
	for _, e := range b {
		in[e.hash] = true
	}
	n := 0
	for _, e := range a {
		if !in[e.hash] {
			n++
		}
	}
	return n
}

// warnTokenGroups warns about each token whose group p lacks.
func (s *Server) warnTokenGroups(p *Policy) {
	for i, t := range s.tokenEntries() {
		if t.group != "" && !p.HasGroup(t.group) {
			s.logger.Warn("Enrollment token's group is not in the policy; its agents are refused until it is.",
				"token_index", i, "group", t.group)
		}
	}
}
