// This file holds the settings install and enable take: their flags, the
// environment variables Teleport's own updater reads when a flag is
// absent, the enrollment token from a root-only file, and the proxy
// address from the agent's /etc/teleport.yaml.

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/safeperm"
	"github.com/gravitational/teleport-update/internal/teleportconfig"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

// Environment variables read when the matching flag is absent.
const (
	envProxy   = "TELEPORT_PROXY"
	envGroup   = "TELEPORT_UPDATE_GROUP"
	envVersion = "TELEPORT_UPDATE_VERSION"
	envBaseURL = "TELEPORT_CDN_BASE_URL"
	envToken   = "TELEPORT_UPDATE_TOKEN"
)

// maxTokenFile bounds a token file; tokens are tens of bytes.
const maxTokenFile = 4 << 10

// settingFlags are the settings install and enable take.
type settingFlags struct {
	proxy, group, token, tokenFile, baseURL, version string
	overwrite, noCensus                              bool
}

func (s *settingFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&s.proxy, "proxy", "", "proxy address HOST[:PORT] that serves the update policy (default: $"+envProxy+", else the proxy in /etc/teleport.yaml)")
	fl.StringVar(&s.group, "group", "", "update group of this host (default: $"+envGroup+")")
	fl.StringVar(&s.tokenFile, "token-file", "", "file holding the enrollment token for census reports (root-owned, mode 0600 or 0400); default: $"+envToken)
	fl.StringVar(&s.token, "token", "", "enrollment token (visible to every local user in the process list: prefer --token-file)")
	fl.StringVar(&s.baseURL, "base-url", "", "CDN base URL (https only), default $"+envBaseURL+", else "+download.DefaultBaseURL)
	fl.StringVar(&s.version, "version", "", "install exactly this version instead of the proxy's target (default: $"+envVersion+")")
	fl.BoolVar(&s.overwrite, "overwrite", false, "replace files in /usr/local/bin and an /etc/systemd/system/teleport.service that teleport-update did not create (the unit is kept and restored by uninstall)")
	fl.BoolVar(&s.noCensus, "no-census", false, "do not send census reports to the proxy")
}

// request turns the flags, the environment and, for the proxy of a host
// that has none configured, /etc/teleport.yaml into an install request. A
// flag wins over its variable. hasProxy says update.yaml already names a
// proxy, which a re-install keeps unless told otherwise.
func (s *settingFlags) request(c *cli, cmd *cobra.Command, hasProxy bool, log *slog.Logger) (updater.InstallRequest, error) {
	var sources []any
	fromEnv := func(flag, val, env string) string {
		switch {
		case cmd.Flags().Changed(flag):
			sources = append(sources, flag, "--"+flag)
			return val
		case c.env(env) != "":
			sources = append(sources, flag, "$"+env)
		}
		return c.env(env)
	}
	req := updater.InstallRequest{
		Proxy:         fromEnv("proxy", s.proxy, envProxy),
		Group:         fromEnv("group", s.group, envGroup),
		BaseURL:       fromEnv("base-url", s.baseURL, envBaseURL),
		Version:       fromEnv("version", s.version, envVersion),
		Overwrite:     s.overwrite,
		DisableCensus: s.noCensus,
	}
	token, err := s.resolveToken(c, cmd, log)
	if err != nil {
		return req, err
	}
	req.Token = token
	req.Proxy, err = c.proxyFromConfig(req.Proxy, hasProxy, log)
	log.Debug("Settings given (others are kept or default).", sources...)
	return req, err
}

// resolveToken returns the enrollment token: from --token-file, --token
// (with a warning) or $TELEPORT_UPDATE_TOKEN, in that order; "" for none.
func (s *settingFlags) resolveToken(c *cli, cmd *cobra.Command, log *slog.Logger) (string, error) {
	switch {
	case cmd.Flags().Changed("token-file") && cmd.Flags().Changed("token"):
		return "", usageError("--token and --token-file are mutually exclusive")
	case cmd.Flags().Changed("token-file"):
		return readTokenFile(s.tokenFile)
	case cmd.Flags().Changed("token"):
		log.Warn("The enrollment token was given with --token, which every local user can read in the process list and sudo logs; use --token-file or " + envToken + " instead.")
		return s.token, nil
	}
	return c.env(envToken), nil
}

// readTokenFile reads an enrollment token from path: a regular file (not a
// symlink) owned by root (or the user running teleport-update) that only
// its owner may read or write. The token is the file's text without
// surrounding white space.
func readTokenFile(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return "", fmt.Errorf("--token-file: %w: %s: is a symlink", safeperm.ErrUnsafe, path)
	}
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if err := safeperm.Check(path, fi, false); err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o044 != 0 {
		return "", fmt.Errorf("--token-file: %w: %s: mode %#o is group/world-readable (want 0600 or 0400)", safeperm.ErrUnsafe, path, perm)
	}
	data, err := capread.All(f, maxTokenFile)
	if err != nil {
		return "", fmt.Errorf("--token-file %s: %w", path, err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("--token-file %s: the file is empty", path)
	}
	if strings.ContainsAny(token, "\n\r\x00") {
		return "", fmt.Errorf("--token-file %s: the token spans more than one line", path)
	}
	return token, nil
}

// proxyFromConfig returns the proxy to install with: given (from --proxy
// or $TELEPORT_PROXY) when set, with a warning when /etc/teleport.yaml
// names another; otherwise "" when update.yaml names one (hasProxy), and
// else the proxy /etc/teleport.yaml names. An unreadable teleport.yaml is
// an error only when it was needed.
func (c *cli) proxyFromConfig(given string, hasProxy bool, log *slog.Logger) (string, error) {
	if given == "" && hasProxy {
		return "", nil
	}
	tc, err := teleportconfig.Read(c.root)
	switch {
	case given != "":
		if err == nil && tc.ProxyAddr() != "" && !sameProxy(given, tc.ProxyAddr()) {
			log.Warn("The proxy given differs from the one in /"+teleportconfig.Rel+"; using the one given.", "proxy", given, "teleport_yaml_proxy", tc.ProxyAddr())
		}
		return given, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("no --proxy given, and reading the proxy from the agent's configuration failed: %w", err)
	}
	if p := tc.ProxyAddr(); p != "" {
		log.Info("Using the proxy named in /"+teleportconfig.Rel+".", "proxy", p)
		return p, nil
	}
	return "", nil
}

// sameProxy reports whether a and b name the same HOST:PORT, 443 when no
// port is given (what the updater dials).
func sameProxy(a, b string) bool {
	norm := func(s string) string {
		if _, _, err := net.SplitHostPort(s); err != nil {
			s = net.JoinHostPort(strings.Trim(s, "[]"), "443")
		}
		return strings.ToLower(s)
	}
	return norm(a) == norm(b)
}

// given reports whether any setting was given, by flag or environment.
func (s *settingFlags) given(c *cli, cmd *cobra.Command) bool {
	for _, fl := range []string{"proxy", "group", "token", "token-file", "base-url", "version", "overwrite", "no-census"} {
		if cmd.Flags().Changed(fl) {
			return true
		}
	}
	for _, env := range []string{envProxy, envGroup, envVersion, envBaseURL, envToken} {
		if c.env(env) != "" {
			return true
		}
	}
	return false
}
