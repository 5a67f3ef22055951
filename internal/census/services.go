package census

import (
	"errors"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxTeleportConfig caps how much of etc/teleport.yaml is read.
const maxTeleportConfig = 1 << 20

// teleportServices maps Teleport config sections to the service names of
// RFD 108. Auth, proxy and SSH run unless their section says `enabled: no`;
// the others run only when their section says `enabled: yes` (Teleport's
// own defaults).
var teleportServices = []struct {
	section   string
	service   string
	onDefault bool
}{
	{"ssh_service", "node", true},
	{"auth_service", "auth", true},
	{"proxy_service", "proxy", true},
	{"kubernetes_service", "kube", false},
	{"app_service", "app", false},
	{"db_service", "db", false},
	{"windows_desktop_service", "windows_desktop", false},
	{"discovery_service", "discovery", false},
}

// probeServices reads the Teleport services the agent's config enables from
// etc/teleport.yaml; empty when there is no readable config.
func probeServices(fsys *hostFS) []string {
	b, err := fsys.readFile("etc/teleport.yaml", maxTeleportConfig)
	if err != nil {
		return nil
	}
	return ServicesFromConfig(b)
}

// ServicesFromConfig returns the services a teleport.yaml enables, sorted:
// node, auth and proxy unless disabled, kube, app, db, windows_desktop and
// discovery when enabled. Only the `enabled` keys are read; nil when the
// text is not a YAML mapping.
func ServicesFromConfig(data []byte) []string {
	var cfg map[string]struct {
		Enabled string `yaml:"enabled"`
	}
	// A *yaml.TypeError means some other key did not fit the shape (version:
	// v3, a list somewhere); the sections that did fit are still decoded.
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		var typeErr *yaml.TypeError
		if !errors.As(err, &typeErr) {
			return nil
		}
	}
	if cfg == nil {
		return nil
	}
	var out []string
	for _, s := range teleportServices {
		sec, present := cfg[s.section]
		on := s.onDefault
		if present && sec.Enabled != "" {
			switch strings.ToLower(sec.Enabled) {
			case "yes", "true", "on", "1":
				on = true
			case "no", "false", "off", "0":
				on = false
			}
		}
		if on {
			out = append(out, s.service)
		}
	}
	slices.Sort(out)
	return out
}
