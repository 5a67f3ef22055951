// This file holds the state store, the only writer of update.yaml, and the
// transitions it records: each is a pure change of the state (table-tested
// in state_test.go) that the store applies to a copy and saves.
//
// Reading and writing:
//   - Every read-modify-write holds update.lock from the read to the last
//     write (openStore), so two runs never interleave their changes.
//   - Reads that change nothing (status, census) take no lock, so they
//     never wait for a running update. They rely on every write being the
//     rename of a complete file over update.yaml (SaveConfig): a reader
//     opens the state before or after a transition, never part of one.
//
// A failed save: the state in memory stays what the file holds, and the
// error reaches the caller of the operation. An operation that has to go
// on (putting the previous version back after a failed health check)
// keeps the error and returns it joined with its own. No failed save is
// only logged.

package updater

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/updater/download"
)

// store is update.yaml of one operation, held under update.lock.
type store struct {
	path string
	// cfg is what the file holds (NewConfig when there is no file).
	cfg    *Config
	now    func() time.Time
	unlock func()
	// run is the run log whose steps the recorded outcome carries.
	run *runLog
	// self is this updater's version, which stamps the file's format.
	self string
}

// openStore takes update.lock and loads update.yaml. With installed, a
// host without a proxy configured is ErrNotInstalled. The caller must
// call close.
func (u *Updater) openStore(ctx context.Context, installed bool) (*store, error) {
	unlock, err := u.lock(ctx)
	if err != nil {
		return nil, err
	}
	cfg, exists, err := LoadConfig(u.Tree.StatePath())
	if err == nil && installed && (!exists || cfg.Spec.Proxy == "") {
		err = ErrNotInstalled
	}
	if err != nil {
		unlock()
		return nil, err
	}
	u.run = newRunLog(u.now)
	st := &store{path: u.Tree.StatePath(), cfg: cfg, now: u.now, unlock: unlock, run: u.run, self: u.SelfVersion}
	u.repairSelf(ctx, st)
	return st, nil
}

// lock takes update.lock for the whole operation, and moves an install
// of an earlier build over first (see migrate.go).
func (u *Updater) lock(ctx context.Context) (func(), error) {
	release, err := u.Tree.Lock(ctx, u.LockWait) // creates the data directory
	if err != nil {
		return nil, u.widenSandbox(ctx, err)
	}
	unlock := func() {
		if err := release(); err != nil {
			u.Log.Warn("Failed to release the update lock.", "error", err)
		}
	}
	held := false
	defer func() {
		if !held { // an error or a panic in migrate
			unlock()
		}
	}()
	if err := u.migrate(ctx); err != nil {
		return nil, err
	}
	held = true
	return unlock, nil
}

func (s *store) close() { s.unlock() }

// reload reads update.yaml again, after another process (an updater's
// setup, run while this one holds the lock) wrote it.
func (s *store) reload() error {
	cfg, _, err := LoadConfig(s.path)
	if err != nil {
		return err
	}
	s.cfg = cfg
	return nil
}

// Config returns a copy of the state.
func (s *store) Config() *Config { return s.cfg.Clone() }

// apply saves the state changed by change, named what in the error. The
// state in memory changes only when the save succeeds.
func (s *store) apply(what string, change func(*Config)) error {
	next := s.cfg.Clone()
	change(next)
	next.Status.Updater.stamp(s.self)
	if err := SaveConfig(s.path, next); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	s.cfg = next
	return nil
}

// goal is where an operation moves the host and what it records once the
// host is there.
type goal struct {
	version *semver.Version
	// flavour is the build of version (edition, FIPS).
	flavour   download.Flavour
	overwrite bool // replace files not ours in the way of a link
	// spec is the settings saved with the commit.
	spec Spec
	// skip, when set, is skip-listed in the same save (the version a
	// rollback leaves).
	skip string
}

// StartSwitch records that a switch to v begins: links and units are
// about to change.
func (s *store) StartSwitch(v string) error {
	return s.apply("recording the switch to "+v, func(c *Config) { c.Status.Switching = v })
}

// ClearSwitching records that the host runs the active version and no
// switch is under way.
func (s *store) ClearSwitching() error {
	if s.cfg.Status.Switching == "" {
		return nil
	}
	return s.apply("clearing the switch marker", func(c *Config) { c.Status.Switching = "" })
}

// Commit records that the host runs g.version, healthy: the commit point.
func (s *store) Commit(g goal) error {
	now := s.now()
	return s.apply("committing "+g.version.String(), func(c *Config) {
		c.commit(g, now)
		c.Status.LastUpdate.Steps = s.run.outcome("")
	})
}

// Confirm records that the host already runs g.version, with g's settings.
func (s *store) Confirm(g goal) error {
	now := s.now()
	return s.apply("recording "+g.version.String(), func(c *Config) {
		c.confirm(g, now)
		c.Status.LastUpdate.Steps = s.run.outcome("")
	})
}

// RecordFailure records a failed attempt to move to target; a switch
// marker stays, since the host may still be mid-switch.
func (s *store) RecordFailure(target string, err error) error {
	now := s.now()
	return s.apply("recording the failure", func(c *Config) { c.Status.fail(target, err, now, s.run) })
}

// RecordRevert records a failed switch to target after which the host is
// back on the active version.
func (s *store) RecordRevert(target string, err error) error {
	now := s.now()
	return s.apply("recording the failure", func(c *Config) {
		c.Status.fail(target, err, now, s.run)
		c.Status.Switching = ""
	})
}

// Skip puts v on the skip list.
func (s *store) Skip(v string) error {
	return s.apply("skip-listing "+v, func(c *Config) { c.Status.addSkip(v) })
}

// Unskip takes v off the skip list (an admin installs or pins it).
func (s *store) Unskip(v string) error {
	if !s.cfg.Status.IsSkipped(v) {
		return nil
	}
	return s.apply("taking "+v+" off the skip list", func(c *Config) { c.Status.removeSkip(v) })
}

// SetSpec records new settings.
func (s *store) SetSpec(spec Spec) error {
	return s.apply("saving the settings", func(c *Config) { c.Spec = spec.clone() })
}

// Unpin lets the host follow the proxy again.
func (s *store) Unpin() error {
	return s.apply("unpinning", func(c *Config) { c.Spec.Pinned, c.Spec.PinnedVersion = false, "" })
}

// SetEnabled turns automatic updates on or off.
func (s *store) SetEnabled(on bool) error {
	return s.apply("saving enabled", func(c *Config) { c.Spec.Enabled = on })
}

// SetCensus turns census reporting on or off.
func (s *store) SetCensus(on bool) error {
	return s.apply("saving the census setting", func(c *Config) { c.Spec.setCensus(on) })
}

// removeState removes update.yaml (uninstall) and says whether it did.
func (u *Updater) removeState() bool {
	return os.Remove(u.Tree.StatePath()) == nil
}

// The transitions. Each changes only the value it is called on and never
// writes through to a list it shares with another Config.

// commit records a healthy switch to g.version with g's settings: the
// version before becomes the backup, and g.skip is skip-listed.
func (c *Config) commit(g goal, now time.Time) {
	st, v := &c.Status, g.version.String()
	if st.Active != v {
		if st.Active != "" {
			st.Backup, st.BackupFlavour = st.Active, st.ActiveFlavour
		}
		st.Active = v
	}
	st.ActiveFlavour = g.flavour
	if st.Backup == v {
		st.Backup, st.BackupFlavour = "", download.Flavour{}
	}
	st.Switching = ""
	st.addKnownGood(v)
	c.confirm(g, now)
}

// confirm records g's settings and a successful run to g.version, which
// the host runs already.
func (c *Config) confirm(g goal, now time.Time) {
	c.Spec = g.spec.clone()
	c.Status.addSkip(g.skip)
	c.Status.LastUpdate = &LastUpdate{Time: now.UTC(), Target: g.version.String(), Success: true}
}

// fail records a failed attempt to move to target, with the steps run
// logged.
func (s *Status) fail(target string, err error, now time.Time, run *runLog) {
	code := Classify(err, "").Code
	s.LastUpdate = &LastUpdate{Time: now.UTC(), Target: target, Error: oneLine(err.Error()), ErrorCode: code, Steps: run.outcome(code)}
}

// addSkip puts v on the skip list once.
func (s *Status) addSkip(v string) {
	if v != "" && !s.IsSkipped(v) {
		s.Skip = append(slices.Clip(s.Skip), v)
	}
}

// removeSkip takes v off the skip list.
func (s *Status) removeSkip(v string) {
	s.Skip = slices.DeleteFunc(slices.Clone(s.Skip), func(x string) bool { return x == v })
	if len(s.Skip) == 0 {
		s.Skip = nil
	}
}

// addKnownGood records that v passed its health check on this host,
// newest last, keeping at most maxKnownGood versions.
func (s *Status) addKnownGood(v string) {
	s.KnownGood = slices.DeleteFunc(slices.Clone(s.KnownGood), func(x string) bool { return x == v })
	s.KnownGood = append(s.KnownGood, v)
	if n := len(s.KnownGood); n > maxKnownGood {
		s.KnownGood = s.KnownGood[n-maxKnownGood:]
	}
}

// flavourConflict refuses to install v as build f when this host keeps v
// as another build: versions/<v> holds one build of a version, and the
// active and backup versions are never replaced in place.
func (s *Status) flavourConflict(v string, f download.Flavour) error {
	have, kept := s.ActiveFlavour, s.Active == v
	if !kept {
		have, kept = s.BackupFlavour, s.Backup == v
	}
	if !kept || have == f {
		return nil
	}
	return fmt.Errorf("%w: %s is installed here (%s) and is not replaced by its %s build in place; install another version (install --version), or uninstall and install again", ErrFlavour, v, have, f)
}

// setCensus turns census reporting on or off. Turning it on is explicit:
// the host then reports even while its automatic updates are disabled.
func (s *Spec) setCensus(on bool) {
	s.CensusDisabled = !on
	s.CensusEnabled = on
}

// pin holds the host at v.
func (s *Spec) pin(v string) {
	s.Pinned, s.PinnedVersion = true, v
}

// clone returns a copy of s that shares no list with it.
func (s Spec) clone() Spec {
	s.InstallMethods = slices.Clone(s.InstallMethods)
	return s
}
