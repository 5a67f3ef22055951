package updater

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// unpublish makes the CDN stop serving version (404 from then on).
func (e *testEnv) unpublish(version string) {
	name := e.artifact(version).TarballName()
	e.cdn.Remove(name)
	for _, s := range fixture.SignedSuffixes {
		e.cdn.Remove(name + s)
	}
}

// damage is something that happened to versions/<v> after it was installed.
type damage struct {
	name string
	do   func(t *testing.T, e *testEnv, v string)
	// refetch: the version can and must be fetched again.
	refetch bool
}

var damages = []damage{
	{"deleted, and the CDN no longer serves it", func(t *testing.T, e *testEnv, v string) {
		mustDo(t, os.RemoveAll(install.New(e.root).VersionDir(v)))
		e.unpublish(v)
	}, false},
	{"bin/teleport deleted", func(t *testing.T, e *testEnv, v string) {
		mustDo(t, os.Remove(filepath.Join(install.New(e.root).VersionDir(v), "bin/teleport")))
	}, true},
	{"bin/teleport not executable", func(t *testing.T, e *testEnv, v string) {
		mustDo(t, os.Chmod(filepath.Join(install.New(e.root).VersionDir(v), "bin/teleport"), 0o644))
	}, true},
	{".verified deleted", func(t *testing.T, e *testEnv, v string) {
		mustDo(t, os.Remove(filepath.Join(install.New(e.root).VersionDir(v), ".verified")))
	}, true},
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A missing or damaged active version does not wedge the commands that
// move the host elsewhere: each reaches the version asked for, and a
// damaged directory is fetched again rather than trusted.
func TestDamagedActiveVersionDoesNotWedge(t *testing.T) {
	ops := []struct {
		name string
		run  func(ctx context.Context, e *testEnv, u *Updater) error
		want string
	}{
		{"update", func(ctx context.Context, e *testEnv, u *Updater) error {
			e.setTarget("3.0.0", true, 0)
			_, err := u.Update(ctx, false)
			return err
		}, "3.0.0"},
		{"install --version", func(ctx context.Context, e *testEnv, u *Updater) error {
			_, err := u.Install(ctx, InstallRequest{Version: "3.0.0"})
			return err
		}, "3.0.0"},
		{"pin --version", func(ctx context.Context, e *testEnv, u *Updater) error {
			_, err := u.Pin(ctx, "3.0.0")
			return err
		}, "3.0.0"},
		{"rollback", func(ctx context.Context, e *testEnv, u *Updater) error {
			_, err := u.Rollback(ctx)
			return err
		}, "1.0.0"},
	}
	for _, op := range ops {
		for _, d := range damages {
			t.Run(op.name+"/"+d.name, func(t *testing.T) {
				e, u, sd := newSystemdHost(t, pub{"2.0.0", false}, pub{"3.0.0", false})
				ctx := context.Background()
				e.setTarget("2.0.0", true, 0)
				if _, err := u.Update(ctx, false); err != nil {
					t.Fatal(err)
				}
				d.do(t, e, "2.0.0")
				tarball := e.artifact("2.0.0").TarballName()
				hits := e.cdn.Hits(tarball)

				if err := op.run(ctx, e, u); err != nil {
					t.Fatalf("%s with the active version %s: %v", op.name, d.name, err)
				}
				cfg := e.config()
				if cfg.Status.Active != op.want || e.linked() != op.want || sd.running != op.want || cfg.Status.Switching != "" {
					t.Fatalf("active %q, linked %q, running %q, switching %q; want %s", cfg.Status.Active, e.linked(), sd.running, cfg.Status.Switching, op.want)
				}
				if !d.refetch {
					return
				}
				if e.cdn.Hits(tarball) == hits {
					t.Error("the damaged version was not fetched again")
				}
				if err := install.New(e.root).Intact("2.0.0"); err != nil {
					t.Errorf("2.0.0 after the repair: %v", err)
				}
			})
		}
	}
}

// A command that leaves the host on its active version repairs it, or,
// when the version cannot be fetched again, fails saying so.
func TestDamagedActiveVersionWhenStaying(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			e, u := installedHost(t, nil)
			ctx := context.Background()
			d.do(t, e, "1.0.0")
			hits := e.cdn.Hits(e.artifact("1.0.0").TarballName())
			for _, open := range []bool{false, true} {
				e.setTarget("1.0.0", open, 0)
				_, err := u.Update(ctx, false)
				if !d.refetch {
					var hs *download.HTTPStatusError
					if !errors.As(err, &hs) {
						t.Fatalf("update (window open %v) with the active version gone from disk and CDN: %v, want the CDN's 404", open, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("update (window open %v): %v", open, err)
				}
			}
			for _, run := range []func() error{
				func() error { _, err := u.Install(ctx, InstallRequest{Version: "1.0.0"}); return err },
				func() error { _, err := u.Pin(ctx, ""); return err },
			} {
				if err := run(); (err == nil) != d.refetch {
					t.Fatalf("install or pin of the active version: %v", err)
				}
			}
			if got := e.config().Status.Active; got != "1.0.0" {
				t.Fatalf("active %q", got)
			}
			if !d.refetch {
				return
			}
			if err := install.New(e.root).Intact("1.0.0"); err != nil || e.linked() != "1.0.0" {
				t.Fatalf("after the repair: %v, linked %q", err, e.linked())
			}
			if got := e.cdn.Hits(e.artifact("1.0.0").TarballName()); got != hits+1 {
				t.Fatalf("the tarball was fetched %d times, want once", got-hits)
			}
		})
	}
}

// Rolling back to a damaged backup fetches it again.
func TestRollbackToDamagedBackup(t *testing.T) {
	e, u := installedHost(t, nil, pub{"2.0.0", false})
	ctx := context.Background()
	e.setTarget("2.0.0", true, 0)
	if _, err := u.Update(ctx, false); err != nil {
		t.Fatal(err)
	}
	mustDo(t, os.Remove(filepath.Join(install.New(e.root).VersionDir("1.0.0"), "bin/teleport")))
	hits := e.cdn.Hits(e.artifact("1.0.0").TarballName())
	if _, err := u.Rollback(ctx); err != nil {
		t.Fatalf("rollback to a damaged backup: %v", err)
	}
	if e.config().Status.Active != "1.0.0" || e.cdn.Hits(e.artifact("1.0.0").TarballName()) != hits+1 {
		t.Fatalf("after rollback: %+v", e.config().Status)
	}
	if err := install.New(e.root).Intact("1.0.0"); err != nil {
		t.Fatal(err)
	}
}
