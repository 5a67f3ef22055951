package updater

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// TestInstallLabelsForSELinux: on an enforcing host, a version whose
// binaries cannot be labelled is not kept (nor skip-listed), so the next
// install labels it; a labelled one is installed.
func TestInstallLabelsForSELinux(t *testing.T) {
	e := newTestEnv(t)
	u := e.updater()
	enforce := filepath.Join(e.root, "sys/fs/selinux/enforce")
	os.MkdirAll(filepath.Dir(enforce), 0o755)
	os.WriteFile(enforce, []byte("1\n"), 0o644)
	var ran []string
	fail := true
	u.SELinux = install.SELinux{
		LookPath: func(name string) (string, error) { return "/usr/sbin/" + name, nil },
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			ran = append(ran, filepath.Base(name)+" "+strings.Join(args, " "))
			if fail {
				return []byte("SELinux policy is not managed"), errors.New("exit status 1")
			}
			return nil, nil
		},
	}
	e.publish("1.0.0", false)
	req := InstallRequest{Proxy: e.proxyAddr(), BaseURL: e.cdn.Server.URL, Version: "1.0.0"}
	cfg, err := u.Install(context.Background(), req)
	if !errors.Is(err, install.ErrSELinux) {
		t.Fatalf("install with labelling failing = %v, want ErrSELinux", err)
	}
	if _, ok, _ := u.Tree.Installed("1.0.0"); ok || cfg.Status.IsSkipped("1.0.0") || e.linked() != "" {
		t.Fatalf("unlabelled version kept (installed %v) or skipped (%+v) or linked (%q)", ok, cfg.Status, e.linked())
	}
	fail, ran = false, nil
	if _, err := u.Install(context.Background(), req); err != nil {
		t.Fatalf("install: %v", err)
	}
	want := []string{
		"semanage fcontext -a -t bin_t /var/lib/teleport-update/versions/[^/]+/bin(/.*)?",
		"restorecon -R " + filepath.Join(u.Tree.VersionDir("1.0.0"), "bin"),
	}
	if strings.Join(ran, "\n") != strings.Join(want, "\n") {
		t.Errorf("ran:\n%s\nwant:\n%s", strings.Join(ran, "\n"), strings.Join(want, "\n"))
	}
}
