// Package teleportconfig reads the little the updater needs from the
// agent's own configuration file, /etc/teleport.yaml: whether it exists,
// and the address the agent joins its cluster through, which is the proxy
// the updater asks for its policy when no proxy is given.
//
// The file belongs to the agent and may hold anything Teleport accepts;
// only the keys below are decoded, the rest is ignored. Reading is capped
// at MaxSize.
package teleportconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/gravitational/teleport-update/internal/capread"
)

// Rel is where the agent's configuration lives, relative to the root.
const Rel = "etc/teleport.yaml"

// MaxSize bounds the configuration read; Teleport's own files are a few
// kilobytes.
const MaxSize = 1 << 20

// ErrInvalid: the file is not a Teleport configuration the updater can
// read; the error says what is wrong.
var ErrInvalid = errors.New("invalid Teleport configuration")

// Config is what the updater reads of teleport.yaml.
type Config struct {
	// Version is the file's format: "v1" (or empty), "v2" or "v3".
	Version string
	// ProxyServer is teleport.proxy_server, the v3 way to join through a
	// proxy.
	ProxyServer string
	// AuthServers is teleport.auth_servers of v1 and v2 files, which may
	// name a proxy too.
	AuthServers []string
}

type rawConfig struct {
	Version  string `yaml:"version"`
	Teleport *struct {
		ProxyServer string   `yaml:"proxy_server"`
		AuthServers []string `yaml:"auth_servers"`
	} `yaml:"teleport"`
}

// Parse decodes the keys Config holds from the text of a teleport.yaml.
//
// Outcomes: a Config (its fields empty when the file does not set them,
// including an empty file); or an error wrapping ErrInvalid when the text
// is larger than MaxSize, is not YAML, is not a mapping, holds more than
// one document, or one of the keys read has the wrong shape.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxSize)
	}
	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, oneLine(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalid)
	}
	c := &Config{Version: strings.TrimSpace(raw.Version)}
	switch c.Version {
	case "", "v1", "v2", "v3":
	default:
		return nil, fmt.Errorf("%w: version %q is not v1, v2 or v3", ErrInvalid, c.Version)
	}
	if raw.Teleport != nil {
		c.ProxyServer = strings.TrimSpace(raw.Teleport.ProxyServer)
		for _, a := range raw.Teleport.AuthServers {
			if a = strings.TrimSpace(a); a != "" {
				c.AuthServers = append(c.AuthServers, a)
			}
		}
	}
	return c, nil
}

// ProxyAddr is the address the agent joins through, as HOST[:PORT]:
// proxy_server, or for v1 and v2 files the first of auth_servers; "" when
// the file names neither. (v3 files have no auth_servers, and their
// auth_server names an Auth Service, which serves no update policy.)
func (c *Config) ProxyAddr() string {
	if c.ProxyServer != "" {
		return c.ProxyServer
	}
	if c.Version != "v3" && len(c.AuthServers) > 0 {
		return c.AuthServers[0]
	}
	return ""
}

// Read reads and parses root/etc/teleport.yaml.
//
// Outcomes: a Config; an error wrapping fs.ErrNotExist when there is no
// such file; an error wrapping ErrInvalid (see Parse) naming the file; or
// the error of reading it.
func Read(root string) (*Config, error) {
	path := filepath.Join(root, Rel)
	data, err := capread.File(path, MaxSize)
	if errors.Is(err, capread.ErrTooLarge) {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", path, ErrInvalid, MaxSize)
	}
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Exists reports whether root/etc/teleport.yaml exists (as anything but a
// missing path: a file the agent cannot read still means someone
// configured it).
func Exists(root string) bool {
	_, err := os.Stat(filepath.Join(root, Rel))
	return !errors.Is(err, fs.ErrNotExist)
}

// oneLine keeps a YAML error on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
