// This file holds update.yaml's format: the Config type (settings in
// spec, what the updater did in status), its strict parser and its atomic
// writer. Only the state store (state.go) writes it during operations.

package updater

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// Config kind and version of update.yaml.
const (
	ConfigKind    = "update_config"
	ConfigVersion = "v1"
	// MaxConfigSize bounds update.yaml; anything larger is not ours.
	MaxConfigSize = 1 << 20
	// maxKnownGood bounds status.known_good.
	maxKnownGood = 20
)

// ErrConfig is the category of errors in update.yaml.
var ErrConfig = errors.New("invalid update.yaml")

// Config is update.yaml: the host's settings (spec) and what the updater
// did (status). It is written atomically; the file on disk is the commit
// point of every operation.
type Config struct {
	Kind    string `yaml:"kind"`
	Version string `yaml:"version"`
	Spec    Spec   `yaml:"spec"`
	Status  Status `yaml:"status"`
}

// Spec is what the admin chose.
type Spec struct {
	// Proxy is HOST[:PORT] of the Teleport proxy that serves policy.
	Proxy string `yaml:"proxy,omitempty"`
	// Group is the update group sent to the proxy.
	Group string `yaml:"group,omitempty"`
	// BaseURL overrides the built-in CDN base; empty means the default.
	BaseURL string `yaml:"base_url,omitempty"`
	// Enabled is false when the admin disabled automatic updates.
	Enabled bool `yaml:"enabled"`
	// Pinned holds the host at PinnedVersion (or the active version).
	Pinned        bool   `yaml:"pinned"`
	PinnedVersion string `yaml:"pinned_version,omitempty"`
	// Token is the enrollment token used for census reports.
	Token string `yaml:"token,omitempty"`
	// InstallMethods are the TELEPORT_INSTALL_METHOD_* seen at install time.
	InstallMethods []string `yaml:"install_methods,omitempty"`
	// CensusDisabled turns census reporting off.
	CensusDisabled bool `yaml:"census_disabled,omitempty"`
	// CensusEnabled records that an admin turned census reporting on
	// explicitly (`census --enable`). Only then does a host whose automatic
	// updates are disabled still send reports.
	CensusEnabled bool `yaml:"census_enabled,omitempty"`
	// CensusSalt keys the host_id hash; random per install, never sent.
	CensusSalt string `yaml:"census_salt,omitempty"`
	// UpdaterID is this updater's random id (a UUID), made at install and
	// sent in find requests and census reports: the proxy picks a group's
	// canaries by it.
	UpdaterID string `yaml:"updater_id,omitempty"`
}

// Status is what the updater did. The active and the backup version are
// saved with their flavour as Teleport saves them,
// `active: {version: 16.4.6, flags: [Enterprise, FIPS]}` (see revision); a
// plain `active: 16.4.6` from an older update.yaml reads as community.
type Status struct {
	Active        string           `yaml:"-"`
	ActiveFlavour download.Flavour `yaml:"-"`
	Backup        string           `yaml:"-"`
	BackupFlavour download.Flavour `yaml:"-"`
	Skip          []string         `yaml:"skip,omitempty"`
	// KnownGood lists versions that passed a health check on this host,
	// newest last; the proxy may downgrade a host only to one of them.
	KnownGood  []string    `yaml:"known_good,omitempty"`
	LastUpdate *LastUpdate `yaml:"last_update,omitempty"`
	// Switching is the version a switch was started to. It is saved before
	// links or units change and cleared when the switch is committed or
	// rolled back, so a run that finds it set knows the previous run was
	// interrupted and what systemd may still be running.
	Switching string `yaml:"switching,omitempty"`
	// Updater is what the updater records about itself (selfupdate.go).
	Updater UpdaterState `yaml:"updater,omitempty"`
}

// UpdaterState is what update.yaml records about teleport-update itself:
// the binary in place, the format of the file, a self-update under way
// and how the last one ended.
type UpdaterState struct {
	// Version is the version of the teleport-update in place (the one the
	// units run), as install or the setup step recorded it.
	Version string `yaml:"version,omitempty"`
	// Format is the format of update.yaml (StateFormat when this build
	// wrote it; 0 for a file written before the updater updated itself).
	Format int `yaml:"format,omitempty"`
	// FormatBy is the version of the updater that first wrote the file in
	// Format: the updater never replaces itself with an older one.
	FormatBy string `yaml:"format_by,omitempty"`
	// Switching is set while the updater replaces itself: from the
	// backup's version to the release's. A run that finds it set knows the
	// previous run was interrupted.
	Switching *SelfSwitch `yaml:"switching,omitempty"`
	// Last is the outcome of the last self-update.
	Last *SelfUpdateResult `yaml:"last_self_update,omitempty"`
}

// SelfSwitch is a self-update under way.
type SelfSwitch struct {
	From string `yaml:"from" json:"from"`
	To   string `yaml:"to" json:"to"`
}

// SelfUpdateResult is the outcome of one self-update.
type SelfUpdateResult struct {
	Time    time.Time `yaml:"time" json:"time"`
	From    string    `yaml:"from" json:"from"`
	To      string    `yaml:"to" json:"to"`
	Success bool      `yaml:"success" json:"success"`
	// ErrorCode is CodeSelfUpdate (the new updater's setup failed; it is
	// not tried again) or CodeInterrupted (it is tried again).
	ErrorCode string `yaml:"error_code,omitempty" json:"error_code,omitempty"`
	Error     string `yaml:"error,omitempty" json:"error,omitempty"`
}

// LastUpdate records the outcome of the last install, update or rollback.
type LastUpdate struct {
	Time    time.Time `yaml:"time" json:"time"`
	Target  string    `yaml:"target" json:"target"`
	Success bool      `yaml:"success" json:"success"`
	Error   string    `yaml:"error,omitempty" json:"error,omitempty"`
	// ErrorCode classifies Error in one word (see ErrorCode).
	ErrorCode string `yaml:"error_code,omitempty" json:"error_code,omitempty"`
	// Steps are the run's steps, at most MaxRunSteps plus the outcome
	// (runlog.go).
	Steps []RunStep `yaml:"steps,omitempty" json:"steps,omitempty"`
}

// configFile is update.yaml as written: Status with the active and backup
// versions as revisions.
type configFile struct {
	Kind    string     `yaml:"kind"`
	Version string     `yaml:"version"`
	Spec    Spec       `yaml:"spec"`
	Status  statusFile `yaml:"status"`
}

type statusFile struct {
	Active *revision `yaml:"active,omitempty"`
	Backup *revision `yaml:"backup,omitempty"`
	Status `yaml:",inline"`
}

// revision is a version and the flags of its flavour, as Teleport's
// update.yaml records them.
type revision struct {
	Version string   `yaml:"version"`
	Flags   []string `yaml:"flags,flow,omitempty"`
}

func newRevision(v string, f download.Flavour) *revision {
	if v == "" {
		return nil
	}
	return &revision{Version: v, Flags: f.Flags()}
}

// UnmarshalYAML reads a revision strictly: a mapping with version and
// flags only, or, as older update.yaml files hold, a plain version string
// (community).
func (r *revision) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&r.Version)
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a version or {version, flags}", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "version":
			err = v.Decode(&r.Version)
		case "flags":
			err = v.Decode(&r.Flags)
		default:
			err = fmt.Errorf("line %d: field %s not found in a revision", k.Line, k.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// flavour checks r's flags; what names where r is, for errors.
func (r *revision) flavour(what string) (string, download.Flavour, error) {
	if r == nil {
		return "", download.Flavour{}, nil
	}
	f, err := download.ParseFlags(r.Flags)
	if err == nil && r.Version == "" && len(r.Flags) > 0 {
		err = errors.New("flags without a version")
	}
	if err != nil {
		return "", f, fmt.Errorf("%w: status.%s.flags: %w", ErrConfig, what, err)
	}
	return r.Version, f, nil
}

func (c *Config) file() *configFile {
	st := c.Status
	return &configFile{Kind: c.Kind, Version: c.Version, Spec: c.Spec, Status: statusFile{
		Active: newRevision(st.Active, st.ActiveFlavour), Backup: newRevision(st.Backup, st.BackupFlavour), Status: st,
	}}
}

func (f *configFile) config() (*Config, error) {
	c := &Config{Kind: f.Kind, Version: f.Version, Spec: f.Spec, Status: f.Status.Status}
	var err error
	if c.Status.Active, c.Status.ActiveFlavour, err = f.Status.Active.flavour("active"); err != nil {
		return nil, err
	}
	if c.Status.Backup, c.Status.BackupFlavour, err = f.Status.Backup.flavour("backup"); err != nil {
		return nil, err
	}
	return c, nil
}

// NewConfig returns the configuration of a host that has never been installed.
func NewConfig() *Config {
	return &Config{Kind: ConfigKind, Version: ConfigVersion, Spec: Spec{Enabled: true}}
}

// ParseConfig decodes update.yaml strictly: unknown fields, another kind or
// version, and trailing documents are errors wrapping ErrConfig.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%w: %d bytes is over the %d byte limit", ErrConfig, len(data), MaxConfigSize)
	}
	file := &configFile{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(file); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrConfig)
		}
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrConfig)
	}
	cfg, err := file.config()
	if err != nil {
		return nil, err
	}
	if cfg.Kind != ConfigKind {
		return nil, fmt.Errorf("%w: kind is %q, want %q", ErrConfig, cfg.Kind, ConfigKind)
	}
	if cfg.Version != ConfigVersion {
		return nil, fmt.Errorf("%w: version is %q, want %q", ErrConfig, cfg.Version, ConfigVersion)
	}
	return cfg, nil
}

// LoadConfig reads update.yaml at path. A missing file yields NewConfig and
// exists=false.
func LoadConfig(path string) (cfg *Config, exists bool, err error) {
	data, err := capread.File(path, MaxConfigSize)
	if errors.Is(err, fs.ErrNotExist) {
		return NewConfig(), false, nil
	}
	if errors.Is(err, capread.ErrTooLarge) {
		return nil, true, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading update config: %w", err)
	}
	cfg, err = ParseConfig(data)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, true, nil
}

// Marshal encodes cfg as YAML.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c.file()); err != nil {
		return nil, fmt.Errorf("encoding update config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding update config: %w", err)
	}
	return buf.Bytes(), nil
}

// SaveConfig writes cfg atomically (temp file, fsync, rename, fsync dir) with
// mode 0600, since it holds the enrollment token.
func SaveConfig(path string, cfg *Config) error {
	data, err := cfg.Marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("saving update config: %w", err)
	}
	if err := install.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("saving update config: %w", err)
	}
	return nil
}

// Clone returns a deep copy of c: changing the copy's lists or last
// update never changes c.
func (c *Config) Clone() *Config {
	out := *c
	out.Spec.InstallMethods = slices.Clone(c.Spec.InstallMethods)
	out.Status.Skip = slices.Clone(c.Status.Skip)
	out.Status.KnownGood = slices.Clone(c.Status.KnownGood)
	if c.Status.LastUpdate != nil {
		lu := *c.Status.LastUpdate
		lu.Steps = slices.Clone(lu.Steps)
		out.Status.LastUpdate = &lu
	}
	if sw := c.Status.Updater.Switching; sw != nil {
		cp := *sw
		out.Status.Updater.Switching = &cp
	}
	if last := c.Status.Updater.Last; last != nil {
		cp := *last
		out.Status.Updater.Last = &cp
	}
	return &out
}

// CensusOn reports whether this host sends census reports: not when they
// were turned off, and not from a host with automatic updates disabled
// unless reporting was explicitly turned on, since a disabled host
// otherwise contacts nobody.
func (s *Spec) CensusOn() bool {
	return !s.CensusDisabled && (s.Enabled || s.CensusEnabled)
}

// IsSkipped reports whether v is on the skip list.
func (s *Status) IsSkipped(v string) bool { return slices.Contains(s.Skip, v) }
