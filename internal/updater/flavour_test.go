package updater

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// publishBuild signs build fl of version and serves it from the CDN under
// Teleport's name for that build.
func (e *testEnv) publishBuild(version string, fl download.Flavour) download.Artifact {
	e.t.Helper()
	a := e.artifact(version)
	a.Edition, a.FIPS = fl.Edition(), fl.FIPS
	data, err := releasetest.ScriptRelease(version, false)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.cdn.Publish(e.key, e.dir, a.TarballName(), data); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// setBuild makes the proxy serve edition and fips with its target.
func (e *testEnv) setBuild(version, edition string, fips bool) {
	e.setTarget(version, true, 0)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.find.Edition, e.find.FIPS = edition, fips
}

// A FIPS host: install fetches the Enterprise FIPS artifact, records the
// flavour next to the version, and its unit runs the agent with --fips.
// When the proxy then serves another build, update refuses and changes
// nothing, contacting no CDN; an admin's install switches, and a version
// the host keeps as another build is refused rather than replaced in place.
func TestFlavourNeverSwitchesSilently(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	withSystemd(e, u)
	fips := download.Flavour{Enterprise: true, FIPS: true}
	fipsArtifact := e.publishBuild("1.0.0", fips)
	e.publishBuild("2.0.0", fips)
	e.publishBuild("2.0.0", download.Flavour{})
	e.setBuild("1.0.0", api.EditionEnterprise, true)
	ctx := context.Background()
	if _, err := u.Install(ctx, InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL}); err != nil {
		t.Fatalf("install: %v", err)
	}
	if n := e.cdn.Hits(fipsArtifact.TarballName()); n != 1 || !strings.Contains(fipsArtifact.TarballName(), "teleport-ent-v1.0.0-") || !strings.HasSuffix(fipsArtifact.TarballName(), "-fips-bin.tar.gz") {
		t.Errorf("%s fetched %d times; want the Enterprise FIPS tarball once", fipsArtifact.TarballName(), n)
	}
	st := e.config().Status
	if st.Active != "1.0.0" || st.ActiveFlavour != fips {
		t.Fatalf("active %s %v; want 1.0.0 Enterprise FIPS", st.Active, st.ActiveFlavour)
	}
	state, _ := os.ReadFile(filepath.Join(e.root, "var/lib/teleport-update/update.yaml"))
	if !strings.Contains(string(state), "active:\n    version: 1.0.0\n    flags: [Enterprise, FIPS]\n") {
		t.Errorf("update.yaml does not record the flavour as Teleport does:\n%s", state)
	}
	unit, _ := os.ReadFile(filepath.Join(e.root, "etc/systemd/system", AgentUnit))
	if !strings.Contains(string(unit), "/bin/teleport start --fips --config") {
		t.Errorf("the FIPS host's unit does not run the agent with --fips:\n%s", unit)
	}

	// The proxy now serves community builds: the timer refuses, whatever
	// the window, and nothing is fetched.
	e.setBuild("2.0.0", api.EditionCommunity, false)
	hits := e.cdn.TotalHits()
	_, err := u.Update(ctx, true)
	if !errors.Is(err, ErrFlavour) || !strings.Contains(err.Error(), "community") || !strings.Contains(err.Error(), "Enterprise FIPS") {
		t.Fatalf("update to another build: %v; want ErrFlavour naming both builds", err)
	}
	if c := Classify(err, "1.0.0"); c.Code != CodeFlavour || !strings.Contains(c.Next, "install") {
		t.Errorf("Classify = %+v; want code %s telling to run install", c, CodeFlavour)
	}
	if e.cdn.TotalHits() != hits || e.config().Status.Active != "1.0.0" || e.config().Status.ActiveFlavour != fips {
		t.Fatalf("a refused update changed something: CDN hits %d -> %d, status %+v", hits, e.cdn.TotalHits(), e.config().Status)
	}

	// An admin's install switches the build, explicitly.
	if _, err := u.Install(ctx, InstallRequest{}); err != nil {
		t.Fatalf("re-install switching builds: %v", err)
	}
	st = e.config().Status
	if st.Active != "2.0.0" || st.ActiveFlavour != (download.Flavour{}) || st.Backup != "1.0.0" || st.BackupFlavour != fips {
		t.Fatalf("after the switch: %+v; want 2.0.0 community, backup 1.0.0 Enterprise FIPS", st)
	}
	unit, _ = os.ReadFile(filepath.Join(e.root, "etc/systemd/system", AgentUnit))
	if strings.Contains(string(unit), "--fips") {
		t.Errorf("the community unit still runs the agent with --fips:\n%s", unit)
	}

	// Back to FIPS at 2.0.0, which this host keeps as a community build:
	// refused, not replaced in place.
	e.setBuild("2.0.0", api.EditionEnterprise, true)
	if _, err := u.Install(ctx, InstallRequest{}); !errors.Is(err, ErrFlavour) || !strings.Contains(err.Error(), "2.0.0 is installed here (community)") {
		t.Fatalf("re-install of a kept version as another build: %v; want ErrFlavour", err)
	}
	if st := e.config().Status; st.Active != "2.0.0" || st.ActiveFlavour != (download.Flavour{}) {
		t.Fatalf("a refused install changed the active version: %+v", st)
	}

	// A rollback goes back to the backup as the build it is.
	if _, err := u.Rollback(ctx); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if st := e.config().Status; st.Active != "1.0.0" || st.ActiveFlavour != fips {
		t.Fatalf("after rollback: %+v; want 1.0.0 Enterprise FIPS", st)
	}
	unit, _ = os.ReadFile(filepath.Join(e.root, "etc/systemd/system", AgentUnit))
	if !strings.Contains(string(unit), "start --fips") {
		t.Errorf("after rolling back to the FIPS build the unit lacks --fips:\n%s", unit)
	}
}

// install --version needs only the build from the proxy: an answer that
// names no version (a cluster without an update policy) still says which
// build to install, as Teleport's install --force-version works.
func TestAdminVersionNeedsOnlyTheBuild(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	ent := download.Flavour{Enterprise: true}
	a := e.publishBuild("1.0.0", ent)
	e.mu.Lock()
	e.find = api.FindResponse{Edition: api.EditionEnterprise}
	e.mu.Unlock()
	ctx := context.Background()
	if _, err := u.Install(ctx, InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL}); err == nil {
		t.Fatal("install without --version from a proxy naming no version succeeded")
	}
	if _, err := u.Install(ctx, InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL, Version: "1.0.0"}); err != nil {
		t.Fatalf("install --version: %v", err)
	}
	if st := e.config().Status; st.Active != "1.0.0" || st.ActiveFlavour != ent || e.cdn.Hits(a.TarballName()) != 1 {
		t.Fatalf("status %+v, %s fetched %d times; want 1.0.0 Enterprise, fetched once", st, a.TarballName(), e.cdn.Hits(a.TarballName()))
	}
}

// A version an earlier attempt left on disk as the active build (a failed
// update is not pruned) is fetched again when an admin installs it as
// another build, never reused.
func TestBuildSwitchRefetchesLeftover(t *testing.T) {
	e, u := installedHost(t, nil, pub{"2.0.0", true})
	ctx := context.Background()
	e.setTarget("2.0.0", true, 0)
	if _, err := u.Update(ctx, true); !errors.Is(err, ErrRolledBack) && !errors.Is(err, ErrHealth) {
		t.Fatalf("update to the broken community 2.0.0: %v; want a rollback", err)
	}
	if err := install.New(e.root).Intact("2.0.0"); err != nil {
		t.Fatalf("the failed 2.0.0 is not left on disk (%v); the test needs it", err)
	}
	ent := download.Flavour{Enterprise: true}
	a := e.publishBuild("2.0.0", ent)
	e.setBuild("2.0.0", api.EditionEnterprise, false)
	if _, err := u.Install(ctx, InstallRequest{Version: "2.0.0"}); err != nil {
		t.Fatalf("install --version 2.0.0 as Enterprise: %v", err)
	}
	if n := e.cdn.Hits(a.TarballName()); n != 1 {
		t.Errorf("%s fetched %d times; want once, not the community leftover reused", a.TarballName(), n)
	}
	if st := e.config().Status; st.Active != "2.0.0" || st.ActiveFlavour != ent {
		t.Errorf("status %+v; want 2.0.0 Enterprise", st)
	}
}
