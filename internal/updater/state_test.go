package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/gravitational/teleport-update/internal/updater/install"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

func TestTransitions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 2, 0, 0, 0, time.FixedZone("CET", 3600))
	at := now.UTC()
	v := semver.MustParse
	base := func() *Config {
		c := NewConfig()
		c.Spec.Proxy = "p.example.com"
		c.Status = Status{Active: "2.0.0", Backup: "1.0.0", Skip: []string{"3.0.0"}, KnownGood: []string{"1.0.0", "2.0.0"}, Switching: "4.0.0"}
		return c
	}
	pinned := base().Spec
	pinned.pin("1.0.0")
	broken := fmt.Errorf("%w: line one\nline two", verify.ErrVerification)
	for _, tc := range []struct {
		name  string
		apply func(*Config)
		want  func(*Config)
	}{
		{"commit a new version", func(c *Config) { c.commit(goal{version: v("4.0.0"), spec: c.Spec}, now) }, func(c *Config) {
			c.Status = Status{Active: "4.0.0", Backup: "2.0.0", Skip: []string{"3.0.0"}, KnownGood: []string{"1.0.0", "2.0.0", "4.0.0"},
				LastUpdate: &LastUpdate{Time: at, Target: "4.0.0", Success: true}}
		}},
		{"commit the backup (a rollback)", func(c *Config) { c.commit(goal{version: v("1.0.0"), spec: pinned, skip: "2.0.0"}, now) }, func(c *Config) {
			c.Spec = pinned
			c.Status = Status{Active: "1.0.0", Backup: "2.0.0", Skip: []string{"3.0.0", "2.0.0"}, KnownGood: []string{"2.0.0", "1.0.0"},
				LastUpdate: &LastUpdate{Time: at, Target: "1.0.0", Success: true}}
		}},
		{"commit the active version", func(c *Config) { c.commit(goal{version: v("2.0.0"), spec: c.Spec}, now) }, func(c *Config) {
			c.Status.Switching = ""
			c.Status.LastUpdate = &LastUpdate{Time: at, Target: "2.0.0", Success: true}
		}},
		{"confirm keeps known_good and the marker", func(c *Config) { c.confirm(goal{version: v("2.0.0"), spec: pinned}, now) }, func(c *Config) {
			c.Spec = pinned
			c.Status.LastUpdate = &LastUpdate{Time: at, Target: "2.0.0", Success: true}
		}},
		{"fail", func(c *Config) { c.Status.fail("4.0.0", broken, now, nil) }, func(c *Config) {
			c.Status.LastUpdate = &LastUpdate{Time: at, Target: "4.0.0", Error: verify.ErrVerification.Error() + ": line one line two", ErrorCode: CodeVerification}
		}},
		{"skip", func(c *Config) { c.Status.addSkip("4.0.0") }, func(c *Config) { c.Status.Skip = []string{"3.0.0", "4.0.0"} }},
		{"skip twice", func(c *Config) { c.Status.addSkip("3.0.0") }, func(c *Config) {}},
		{"skip nothing", func(c *Config) { c.Status.addSkip("") }, func(c *Config) {}},
		{"unskip the last", func(c *Config) { c.Status.removeSkip("3.0.0") }, func(c *Config) { c.Status.Skip = nil }},
		{"unskip another", func(c *Config) { c.Status.removeSkip("9.0.0") }, func(c *Config) {}},
		{"known good moves last", func(c *Config) { c.Status.addKnownGood("1.0.0") }, func(c *Config) { c.Status.KnownGood = []string{"2.0.0", "1.0.0"} }},
		{"pin", func(c *Config) { c.Spec.pin("1.0.0") }, func(c *Config) { c.Spec.Pinned, c.Spec.PinnedVersion = true, "1.0.0" }},
		{"census on", func(c *Config) { c.Spec.setCensus(true) }, func(c *Config) { c.Spec.CensusEnabled = true }},
		{"census off", func(c *Config) { c.Spec.setCensus(false) }, func(c *Config) { c.Spec.CensusDisabled = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			orig := base()
			got, want := orig.Clone(), base()
			tc.apply(got)
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got.Status, want.Status)
			}
			// A transition never writes through to the config it was
			// cloned from.
			if !reflect.DeepEqual(orig, base()) {
				t.Errorf("the original changed: %+v", orig.Status)
			}
		})
	}
}

// A known_good list keeps the newest maxKnownGood versions.
func TestKnownGoodIsBounded(t *testing.T) {
	t.Parallel()
	var s Status
	for i := range maxKnownGood + 5 {
		s.addKnownGood(semver.New(uint64(i), 0, 0, "", "").String())
	}
	if len(s.KnownGood) != maxKnownGood || s.KnownGood[maxKnownGood-1] != "24.0.0" || s.KnownGood[0] != "5.0.0" {
		t.Fatalf("known_good = %v", s.KnownGood)
	}
}

// Taking a version off the skip list of a copy leaves the original's list
// alone (a shared backing array once left [""] behind).
func TestRemoveSkipDoesNotWriteThrough(t *testing.T) {
	t.Parallel()
	orig := Status{Skip: []string{"1.0.0", "2.0.0"}}
	cp := orig
	cp.removeSkip("1.0.0")
	if !reflect.DeepEqual(orig.Skip, []string{"1.0.0", "2.0.0"}) || !reflect.DeepEqual(cp.Skip, []string{"2.0.0"}) {
		t.Fatalf("original %q, copy %q", orig.Skip, cp.Skip)
	}
}

func newTestStore(t *testing.T) (*Updater, *store) {
	t.Helper()
	root := t.TempDir()
	u := &Updater{Tree: install.New(root), LockWait: time.Second, Now: func() time.Time { return time.Unix(0, 0) }}
	st, err := u.openStore(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.close)
	return u, st
}

// A save that fails leaves the state in memory as the file holds it and
// returns the error, naming the transition.
func TestStoreFailedSave(t *testing.T) {
	t.Parallel()
	u, st := newTestStore(t)
	if err := st.StartSwitch("1.0.0"); err != nil {
		t.Fatal(err)
	}
	// A directory in the way makes the rename over update.yaml fail.
	path := u.Tree.StatePath()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := st.Skip("1.0.0")
	if err == nil || !errorsContain(err, "skip-listing 1.0.0") {
		t.Fatalf("Skip with an unwritable update.yaml = %v, want an error naming the transition", err)
	}
	if st.cfg.Status.IsSkipped("1.0.0") || st.cfg.Status.Switching != "1.0.0" {
		t.Fatalf("state in memory after a failed save: %+v", st.cfg.Status)
	}
}

// Transitions that change nothing do not write.
func TestStoreNoOpTransitions(t *testing.T) {
	t.Parallel()
	u, st := newTestStore(t)
	if err := st.ClearSwitching(); err != nil {
		t.Fatal(err)
	}
	if err := st.Unskip("1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(u.Tree.StatePath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a transition that changes nothing wrote update.yaml: %v", err)
	}
}

// The store holds update.lock: a second operation waits for it.
func TestStoreHoldsTheLock(t *testing.T) {
	t.Parallel()
	u, _ := newTestStore(t)
	u.LockWait = 50 * time.Millisecond
	if _, err := u.openStore(context.Background(), false); !errors.Is(err, install.ErrLocked) {
		t.Fatalf("a second openStore = %v, want ErrLocked", err)
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && len(err.Error()) >= len(s) && (err.Error()[:len(s)] == s)
}
