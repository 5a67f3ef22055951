package install

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/internal/capread"
)

// Unit names under /etc/systemd/system.
const (
	AgentUnit        = "teleport.service"
	UpdaterUnit      = "teleport-update.service"
	UpdaterTimerUnit = "teleport-update.timer"
)

// Unit defaults.
const (
	DefaultUpdaterPath     = "/" + UpdaterRel
	DefaultInterval        = 5 * time.Minute
	DefaultRandomizedDelay = time.Minute
	// updaterTimeout bounds one updater run (download, install, health
	// check, rollback) so a hung run cannot hold the lock forever.
	updaterTimeout = time.Hour
	// unitMarker is the first line of every unit we render; RemoveUnits
	// only removes files that carry it.
	unitMarker = "# Managed by teleport-update. Local changes will be overwritten."
)

// DefaultAgentArgs are the arguments of "teleport" when UnitOptions has none.
var DefaultAgentArgs = []string{"start", "--config", "/etc/teleport.yaml"}

// UnitOptions parameterise the rendered units.
type UnitOptions struct {
	// Version is the agent version the units are written for; it only
	// shows in the agent unit's description (ExecStart runs the link).
	Version string
	// AgentArgs follow the binary on ExecStart; nil means DefaultAgentArgs.
	AgentArgs []string
	// FIPS runs the agent in FIPS mode: "--fips" after "start", as
	// Teleport's own updater writes the unit of a FIPS build.
	FIPS bool
	// Example is the release's own teleport.service (Tree.ReleaseUnit);
	// when set and understood, the agent unit is rendered from it (see
	// renderFromExample), otherwise from the built-in template.
	Example []byte
	// UpdaterPath is the updater binary; "" means DefaultUpdaterPath.
	UpdaterPath string
	// UpdaterVersion, when set, is named in a comment of the updater's
	// units: which teleport-update wrote them (a self-update rewrites them).
	UpdaterVersion string
	// Interval between timer runs; zero means DefaultInterval.
	Interval time.Duration
	// RandomizedDelay spreads timer runs over a fleet; zero means
	// DefaultRandomizedDelay, negative means none.
	RandomizedDelay time.Duration
}

func (o UnitOptions) withDefaults() UnitOptions {
	if o.AgentArgs == nil {
		o.AgentArgs = DefaultAgentArgs
	}
	if o.UpdaterPath == "" {
		o.UpdaterPath = DefaultUpdaterPath
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	switch {
	case o.RandomizedDelay == 0:
		o.RandomizedDelay = DefaultRandomizedDelay
	case o.RandomizedDelay < 0:
		o.RandomizedDelay = 0
	}
	return o
}

// Validate checks the options WriteUnits renders.
func (o UnitOptions) Validate() error {
	if err := ValidateVersion(o.Version); err != nil {
		return fmt.Errorf("unit options: %w", err)
	}
	return o.validateUpdater()
}

// validateUpdater checks the options the updater's own units use (all
// but the agent's version).
func (o UnitOptions) validateUpdater() error {
	o = o.withDefaults()
	if !strings.HasPrefix(o.UpdaterPath, "/") {
		return fmt.Errorf("unit options: updater path %q is not absolute", o.UpdaterPath)
	}
	for _, a := range append([]string{o.UpdaterPath}, o.AgentArgs...) {
		if strings.ContainsAny(a, "\x00\n\r") {
			return fmt.Errorf("unit options: argument %q contains a NUL or line break", a)
		}
	}
	if o.Interval < time.Second {
		return fmt.Errorf("unit options: interval %s is shorter than a second", o.Interval)
	}
	return o.validateUpdaterVersion()
}

// validateUpdaterVersion checks UpdaterVersion, which goes into a comment.
func (o UnitOptions) validateUpdaterVersion() error {
	if o.UpdaterVersion == "" {
		return nil
	}
	if err := ValidateVersion(o.UpdaterVersion); err != nil {
		return fmt.Errorf("unit options: updater version: %w", err)
	}
	return nil
}

// writtenBy is the comment line naming the updater that wrote a unit, ""
// when UpdaterVersion is not set.
func (o UnitOptions) writtenBy() string {
	if o.UpdaterVersion == "" {
		return ""
	}
	return "# Written by teleport-update " + o.UpdaterVersion + ".\n"
}

// agentArgs are the agent's arguments: AgentArgs, with "--fips" after
// "start" (or last) for a FIPS build unless it is there already.
func (o UnitOptions) agentArgs() []string {
	if !o.FIPS || slices.Contains(o.AgentArgs, "--fips") {
		return o.AgentArgs
	}
	at := len(o.AgentArgs)
	if at > 0 && o.AgentArgs[0] == "start" {
		at = 1
	}
	return slices.Insert(slices.Clone(o.AgentArgs), at, "--fips")
}

// AgentPIDFile is where the agent writes its PID (teleport start
// --pid-file), as the host sees it. After a reload, the process named there
// is the one that took over.
const AgentPIDFile = "/run/teleport.pid"

// agentLink is the agent's link as systemd on the host sees it.
func agentLink() string {
	return "/" + binDirRel + "/teleport"
}

// agentExecStart is the command line of the agent: its link, the options,
// and the PID file.
func agentExecStart(o UnitOptions) []string {
	return slices.Concat([]string{agentLink()}, o.agentArgs(), []string{"--pid-file=" + AgentPIDFile})
}

// RenderAgentService renders teleport.service. ExecStart runs the agent
// through its link, not a versioned path: the link swap is what switches
// the version, and a reload (SIGHUP: the agent re-executes itself by the
// path it was started with and hands its listeners over) then runs the
// version the link points at, while the old process finishes its sessions.
// systemd follows the new process through PIDFile=. ExecReload uses the
// shell's kill: /bin/kill comes with procps, which minimal hosts lack (a
// reload that cannot run falls back to a restart). The unit names no
// version where it matters ([Service]), so a switch can keep the process.
func RenderAgentService(o UnitOptions) []byte {
	o = o.withDefaults()
	if len(o.Example) > 0 {
		if b, ok := renderFromExample(o, o.Example); ok {
			return b
		}
	}
	argv := agentExecStart(o)
	var b bytes.Buffer
	fmt.Fprintf(&b, `%s
[Unit]
Description=Teleport Service (version %s)
After=network.target

[Service]
Type=simple
Restart=always
RestartSec=5
EnvironmentFile=-/etc/default/teleport
ExecStart=%s
ExecReload=/bin/sh -c "kill -HUP $MAINPID"
PIDFile=%s
LimitNOFILE=524288

[Install]
WantedBy=multi-user.target
`, unitMarker, o.Version, execLine(argv[0], argv[1:]...), AgentPIDFile)
	return b.Bytes()
}

// RenderUpdaterService renders teleport-update.service: a oneshot run of
// "teleport-update update", hardened. ProtectSystem=strict leaves writable
// only what the updater writes: its data directory (versions, staging,
// state, lock), /usr/local/bin (links) and /etc/systemd/system (units),
// and, when it exists ("-"), the tree earlier builds kept in Teleport's
// data directory, which a run moves over and removes. StateDirectory= has
// systemd create the data directory (0755) before it sets up the sandbox,
// so that the first run after an earlier build's install, which must
// create it, can.
// daemon-reload, restart and reset-failed are D-Bus calls to PID 1, which
// acts in its own namespace; connecting to the bus socket in /run needs no
// write access to the filesystem. The capability set keeps only what file
// management as root may need (files owned by another user); a root
// process needs no capability to talk to systemd over D-Bus.
func RenderUpdaterService(o UnitOptions) []byte {
	o = o.withDefaults()
	var b bytes.Buffer
	fmt.Fprintf(&b, `%s
%s[Unit]
Description=Teleport auto-update run
Documentation=https://goteleport.com/docs/upgrading/agent-managed-updates/
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=%s
TimeoutStartSec=%s

ProtectSystem=strict
StateDirectory=%s
StateDirectoryMode=0755
ReadWritePaths=/%s -/%s /%s /%s
ProtectHome=yes
PrivateTmp=yes
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictRealtime=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
PrivateMounts=yes
CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER
UMask=0022
`, unitMarker, o.writtenBy(), execLine(o.UpdaterPath, "update"), systemdSpan(updaterTimeout), strings.TrimPrefix(dataDirRel, "var/lib/"), dataDirRel, legacyDataDirRel, binDirRel, unitDirRel)
	return b.Bytes()
}

// RenderUpdaterTimer renders teleport-update.timer: first run shortly
// after boot (or at once when enabled later), then every Interval after the
// last run, each delayed by up to RandomizedDelay.
func RenderUpdaterTimer(o UnitOptions) []byte {
	o = o.withDefaults()
	var b bytes.Buffer
	fmt.Fprintf(&b, `%s
%s[Unit]
Description=Periodic Teleport auto-update

[Timer]
Unit=%s
OnBootSec=1min
OnUnitActiveSec=%s
`, unitMarker, o.writtenBy(), UpdaterUnit, systemdSpan(o.Interval))
	if o.RandomizedDelay > 0 {
		fmt.Fprintf(&b, "RandomizedDelaySec=%s\n", systemdSpan(o.RandomizedDelay))
	}
	b.WriteString(`
[Install]
WantedBy=timers.target
`)
	return b.Bytes()
}

// systemdSpan formats d as a systemd time span (systemd.time(7)), rounded
// to whole seconds.
func systemdSpan(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s <= 0:
		return "0"
	case s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	case s%60 == 0:
		return fmt.Sprintf("%dmin", s/60)
	default:
		return fmt.Sprintf("%ds", s)
	}
}

// execLine quotes a command line for Exec*= (systemd.service(5), "Command
// lines"): words of plain characters stay as they are, others are double
// quoted with C escapes; "%" and "$" are doubled so systemd does not expand
// specifiers or variables.
func execLine(bin string, args ...string) string {
	words := make([]string, 0, 1+len(args))
	for _, w := range append([]string{bin}, args...) {
		words = append(words, quoteExecWord(w))
	}
	return strings.Join(words, " ")
}

func quoteExecWord(w string) string {
	plain := w != ""
	for _, c := range w {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._-+=:,@", c)) {
			plain = false
			break
		}
	}
	if plain {
		return w
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '%':
			b.WriteString("%%")
		case c == '$':
			b.WriteString("$$")
		case c == '\n':
			b.WriteString(`\n`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// unitFiles returns the unit contents WriteUnits writes, by file name.
func unitFiles(o UnitOptions) []struct {
	name string
	data []byte
} {
	return []struct {
		name string
		data []byte
	}{
		{AgentUnit, RenderAgentService(o)},
		{UpdaterUnit, RenderUpdaterService(o)},
		{UpdaterTimerUnit, RenderUpdaterTimer(o)},
	}
}

// WriteUnits is WriteUnitsOver without overwrite: a unit file that is not
// ours is never replaced.
func (t *Tree) WriteUnits(o UnitOptions) (revert func() error, changed bool, err error) {
	return t.WriteUnitsOver(o, false)
}

// WriteUnitsOver writes the three units atomically into
// /etc/systemd/system, skipping files whose content is already right.
// changed reports whether any file changed (so the caller knows to
// daemon-reload). revert restores the previous bytes (and modes) or
// removes files that did not exist. If it fails midway it reverts what it
// wrote itself.
//
// A unit file there without our marker line is an admin's own (with its
// User=, CapabilityBoundingSet=, ProtectSystem=…): it fails with ErrNotOurs
// before anything is written, unless overwrite. When overwritten, its
// bytes are first kept in the data directory's unit-backup/, which
// RestoreUnitBackups puts back.
func (t *Tree) WriteUnitsOver(o UnitOptions, overwrite bool) (revert func() error, changed bool, err error) {
	if err := o.Validate(); err != nil {
		return nil, false, fmt.Errorf("write units: %w", err)
	}
	if err := os.MkdirAll(t.UnitDir(), 0o755); err != nil {
		return nil, false, fmt.Errorf("write units: %w", err)
	}
	type prev struct {
		path   string
		data   []byte
		mode   fs.FileMode
		exists bool
	}
	var done []prev
	revert = func() error {
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			p := done[i]
			if p.exists {
				errs = append(errs, WriteFileAtomic(p.path, p.data, p.mode))
			} else if err := os.Remove(p.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove %s: %w", p.path, err))
			}
		}
		done = nil
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("revert units: %w", err)
		}
		return nil
	}
	for _, u := range unitFiles(o) {
		p := prev{path: filepath.Join(t.UnitDir(), u.name), mode: 0o644}
		data, err := os.ReadFile(p.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, false, errors.Join(fmt.Errorf("write units: %w", err), revert())
		default:
			p.exists, p.data = true, data
			if fi, err := os.Stat(p.path); err == nil {
				p.mode = fi.Mode().Perm()
			}
		}
		if p.exists && bytes.Equal(data, u.data) {
			continue
		}
		if p.exists && !isOurUnit(data) {
			if !overwrite {
				return nil, false, errors.Join(fmt.Errorf("write units: %s has no %q line: %w (use overwrite to replace it; it is then kept in %s)",
					p.path, unitMarker, ErrNotOurs, t.UnitBackupDir()), revert())
			}
			if err := t.backupUnit(u.name, data); err != nil {
				return nil, false, errors.Join(fmt.Errorf("write units: %w", err), revert())
			}
		}
		if err := WriteFileAtomic(p.path, u.data, 0o644); err != nil {
			return nil, false, errors.Join(fmt.Errorf("write units: %w", err), revert())
		}
		done = append(done, p)
		changed = true
	}
	return revert, changed, nil
}

// RemoveUnits removes the three units from /etc/systemd/system when they
// carry our marker line, and returns the removed paths. A unit that is not
// ours is left alone and reported with ErrNotOurs after the others are
// removed.
func (t *Tree) RemoveUnits() (removed []string, err error) {
	var errs []error
	for _, name := range []string{AgentUnit, UpdaterUnit, UpdaterTimerUnit} {
		p := filepath.Join(t.UnitDir(), name)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove unit: %w", err))
			continue
		}
		if !isOurUnit(data) {
			errs = append(errs, fmt.Errorf("remove unit %s: %w", p, ErrNotOurs))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove unit: %w", err))
			continue
		}
		removed = append(removed, p)
	}
	if len(removed) > 0 {
		if err := syncDir(t.UnitDir()); err != nil {
			errs = append(errs, fmt.Errorf("remove units: %w", err))
		}
	}
	return removed, errors.Join(errs...)
}

// isOurUnit reports whether a unit file's content carries our marker line.
func isOurUnit(data []byte) bool {
	return bytes.HasPrefix(data, []byte(unitMarker+"\n"))
}

// UnitBackupDir is <data dir>/unit-backup, where an admin's own unit files
// are kept when install overwrites them.
func (t *Tree) UnitBackupDir() string { return filepath.Join(t.DataDir(), unitBackupName) }

// backupUnit keeps data, an admin's unit file name, in UnitBackupDir. A
// backup already there is replaced: the file being overwritten now is the
// admin's latest.
func (t *Tree) backupUnit(name string, data []byte) error {
	if err := os.MkdirAll(t.UnitBackupDir(), 0o755); err != nil {
		return fmt.Errorf("back up unit %s: %w", name, err)
	}
	if err := WriteFileAtomic(filepath.Join(t.UnitBackupDir(), name), data, 0o644); err != nil {
		return fmt.Errorf("back up unit %s: %w", name, err)
	}
	return nil
}

// RestoreUnitBackups puts every unit file kept in UnitBackupDir back into
// /etc/systemd/system where that name is free (RemoveUnits removed ours),
// then drops the backup. A backup whose place is taken is left where it
// is. It returns the restored paths.
func (t *Tree) RestoreUnitBackups() (restored []string, err error) {
	entries, err := os.ReadDir(t.UnitBackupDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("restore unit backups: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name != AgentUnit && name != UpdaterUnit && name != UpdaterTimerUnit {
			continue
		}
		dst := filepath.Join(t.UnitDir(), name)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		src := filepath.Join(t.UnitBackupDir(), name)
		data, err := capread.File(src, maxUnitBackupSize)
		if err != nil {
			return restored, fmt.Errorf("restore unit backup %s: %w", src, err)
		}
		if err := WriteFileAtomic(dst, data, 0o644); err != nil {
			return restored, fmt.Errorf("restore unit backup %s: %w", src, err)
		}
		if err := os.Remove(src); err != nil {
			return restored, fmt.Errorf("restore unit backup %s: %w", src, err)
		}
		restored = append(restored, dst)
	}
	_ = os.Remove(t.UnitBackupDir()) // only when empty
	return restored, nil
}

// maxUnitBackupSize bounds a kept unit file; systemd's own limit on a
// unit file is far above any real one.
const maxUnitBackupSize = 1 << 20

// WriteUpdaterUnit writes teleport-update.service alone, when it is absent
// or ours, and reports whether it changed. A run of an earlier build's
// timer unit uses it: that unit's sandbox does not let the run write the
// updater's own directory, so the run widens the sandbox for the next one.
func (t *Tree) WriteUpdaterUnit(o UnitOptions) (changed bool, err error) {
	if !strings.HasPrefix(o.withDefaults().UpdaterPath, "/") {
		return false, fmt.Errorf("write unit %s: updater path %q is not absolute", UpdaterUnit, o.UpdaterPath)
	}
	return t.writeOurUnit(UpdaterUnit, RenderUpdaterService(o))
}

// WriteUpdaterUnits writes the updater's own units, teleport-update.service
// and teleport-update.timer, each when it is absent or ours, and reports
// whether any changed. The setup step of a new updater writes them; the
// agent's unit is left to the next switch.
func (t *Tree) WriteUpdaterUnits(o UnitOptions) (changed bool, err error) {
	if err := o.validateUpdater(); err != nil {
		return false, fmt.Errorf("write units: %w", err)
	}
	if err := os.MkdirAll(t.UnitDir(), 0o755); err != nil {
		return false, fmt.Errorf("write units: %w", err)
	}
	for _, u := range []struct {
		name string
		data []byte
	}{{UpdaterUnit, RenderUpdaterService(o)}, {UpdaterTimerUnit, RenderUpdaterTimer(o)}} {
		c, err := t.writeOurUnit(u.name, u.data)
		if err != nil {
			return changed, err
		}
		changed = changed || c
	}
	return changed, nil
}

// writeOurUnit writes unit name with want when it is absent or ours and
// differs, and reports whether it changed.
func (t *Tree) writeOurUnit(name string, want []byte) (changed bool, err error) {
	p := filepath.Join(t.UnitDir(), name)
	data, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("write unit %s: %w", name, err)
	case bytes.Equal(data, want):
		return false, nil
	case !isOurUnit(data):
		return false, fmt.Errorf("write unit %s: %w", p, ErrNotOurs)
	}
	if err := WriteFileAtomic(p, want, 0o644); err != nil {
		return false, fmt.Errorf("write unit %s: %w", name, err)
	}
	return true, nil
}
