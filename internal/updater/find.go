package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/endpoint"
	"github.com/gravitational/teleport-update/internal/termtext"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

// Limits on what the proxy may answer.
const (
	// MaxFindResponseSize caps the find answer.
	MaxFindResponseSize = 1 << 20
	// MaxJitter is the largest jitter the agent honours; a larger value is
	// clamped, a negative one refused. It stays well under the updater
	// unit's TimeoutStartSec so systemd never stops a run mid-switch.
	MaxJitter = 30 * time.Minute
)

// ErrProxy is the category of failures to get a usable answer from the proxy.
var ErrProxy = errors.New("proxy")

// Policy is the proxy's validated answer for this host's group.
type Policy struct {
	// Version is the target version, already parsed as semver.
	Version *semver.Version
	// AutoUpdate is true when the group's window is open at the proxy.
	AutoUpdate bool
	// Jitter is the upper bound of the random delay before updating.
	Jitter time.Duration
	// Window is the current or next maintenance window, when the proxy sent one.
	Window *api.UpdateWindow
	// Flavour is the build the cluster's agents run (edition and fips).
	Flavour download.Flavour
	// Hold is why the proxy's staged rollout serves this host the
	// rollout's start version instead of its target; "" when it does
	// not. Shown to people only: stripped of control characters and cut
	// to api.MaxHoldLength bytes.
	Hold string
}

// ValidateProxyAddr checks HOST[:PORT] with endpoint.ValidateHostPort: a
// host name or IP literal, no scheme, path or user info. Errors wrap
// ErrProxy.
func ValidateProxyAddr(addr string) error {
	if addr == "" {
		return fmt.Errorf("%w: no proxy address configured", ErrProxy)
	}
	if err := endpoint.ValidateHostPort(addr); err != nil {
		return fmt.Errorf("%w: %w", ErrProxy, err)
	}
	return nil
}

// findURL builds https://PROXY/v1/webapi/find?group=G&updater_id=U.
func findURL(proxy, group, updaterID string) (string, error) {
	if err := ValidateProxyAddr(proxy); err != nil {
		return "", err
	}
	q := url.Values{}
	if group != "" {
		q.Set(api.FindQueryGroup, group)
	}
	if updaterID != "" {
		q.Set(api.FindQueryUpdaterID, updaterID)
	}
	u := url.URL{Scheme: "https", Host: proxy, Path: api.FindPath, RawQuery: q.Encode()}
	return u.String(), nil
}

// Find asks the proxy for the group's policy and validates the answer: the
// body is capped at MaxFindResponseSize, the version must be strict semver,
// the jitter must not be negative (larger than MaxJitter is clamped).
// updaterID (may be empty) tells the proxy which host asks, so that it
// serves a group's target to its canaries first. Failures wrap ErrProxy.
func Find(ctx context.Context, client *download.Client, proxy, group, updaterID string) (*Policy, error) {
	return find(ctx, client, proxy, group, updaterID, true)
}

// find is Find; without needVersion an answer without agent_version is
// valid too (Policy.Version is nil then).
func find(ctx context.Context, client *download.Client, proxy, group, updaterID string, needVersion bool) (*Policy, error) {
	u, err := findURL(proxy, group, updaterID)
	if err != nil {
		return nil, err
	}
	body, err := client.Fetch(ctx, u, MaxFindResponseSize)
	if err != nil {
		return nil, fmt.Errorf("%w: asking the proxy at %s: %w", ErrProxy, proxy, err)
	}
	return parseFind(body, needVersion)
}

// ParseFindResponse validates a find answer. Unknown fields are ignored
// (the proxy may be newer); a missing or invalid version, a negative
// jitter, or an unknown edition is an error wrapping ErrProxy. (Teleport's
// own updater takes an unknown edition for community; here it would be a
// silent change of build, so it is refused.)
func ParseFindResponse(body []byte) (*Policy, error) { return parseFind(body, true) }

// parseFind is ParseFindResponse; without needVersion a missing
// agent_version is no error (an invalid one still is).
func parseFind(body []byte, needVersion bool) (*Policy, error) {
	var resp api.FindResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("%w: the proxy's answer is not valid JSON: %v", ErrProxy, err)
	}
	au := resp.AutoUpdate
	if au.AgentVersion == "" && needVersion {
		return nil, fmt.Errorf("%w: the proxy's answer has no auto_update.agent_version", ErrProxy)
	}
	var v *semver.Version
	if au.AgentVersion != "" {
		var err error
		if v, err = download.ParseVersion(au.AgentVersion); err != nil {
			return nil, fmt.Errorf("%w: the proxy's agent_version: %w", ErrProxy, err)
		}
	}
	if au.AgentUpdateJitterSeconds < 0 {
		return nil, fmt.Errorf("%w: the proxy's agent_update_jitter_seconds is negative (%d)", ErrProxy, au.AgentUpdateJitterSeconds)
	}
	jitter := time.Duration(au.AgentUpdateJitterSeconds) * time.Second
	if au.AgentUpdateJitterSeconds > int(MaxJitter/time.Second) {
		jitter = MaxJitter
	}
	flavour, err := download.NewFlavour(resp.Edition, resp.FIPS)
	if err != nil {
		return nil, fmt.Errorf("%w: the proxy's edition: %w", ErrProxy, err)
	}
	p := &Policy{Version: v, AutoUpdate: au.AgentAutoUpdate, Jitter: jitter, Flavour: flavour,
		Hold: holdText(au.AgentUpdateHold)}
	if w := au.AgentUpdateWindow; w != nil && !w.Start.IsZero() && w.End.After(w.Start) {
		p.Window = w
	}
	return p, nil
}

// holdText is the proxy's hold reason as shown to people: no control
// characters or escape sequences, no space around it, at most
// api.MaxHoldLength bytes, cut between characters.
func holdText(s string) string {
	s = strings.TrimSpace(termtext.Strip(s))
	end := 0
	for end < len(s) {
		_, n := utf8.DecodeRuneInString(s[end:])
		if end+n > api.MaxHoldLength {
			break
		}
		end += n
	}
	return s[:end]
}
