package updater

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gravitational/teleport-update/internal/safeperm"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// TestForgedVersionNeverRuns: uid 65534, who could write to the versions
// directory for a while, forges versions/2.0.0 with a .verified marker and
// a teleport that leaves a mark. When the proxy then names 2.0.0, the
// update refuses the directory as not root's and never runs its binary.
func TestForgedVersionNeverRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run an attack as another user")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	e, u := installedHost(t, nil)
	for _, d := range []string{filepath.Dir(e.root), e.root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tree := install.New(e.root)
	ran := filepath.Join(e.root, "forged-binary-ran")
	dir := tree.VersionDir("2.0.0")
	if err := os.Chown(tree.VersionsDir(), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	forge := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-ec",
		"mkdir -p "+dir+"/bin\n"+
			"printf '#!/bin/sh\\ntouch "+ran+"\\necho Teleport v2.0.0\\n' > "+dir+"/bin/teleport\n"+
			"chmod 755 "+dir+"/bin/teleport\n"+
			"printf '%064d\\n' 0 > "+dir+"/.verified\n")
	if out, err := forge.CombinedOutput(); err != nil {
		t.Fatalf("forging as uid 65534: %v\n%s", err, out)
	}
	if err := os.Chown(tree.VersionsDir(), 0, 0); err != nil {
		t.Fatal(err)
	}

	e.setTarget("2.0.0", true, 0)
	_, err := u.Update(t.Context(), false)
	if !errors.Is(err, safeperm.ErrUnsafe) {
		t.Errorf("update to a forged version = %v, want safeperm.ErrUnsafe", err)
	}
	if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the forged teleport ran as root")
	}
	if v := e.linked(); v != "1.0.0" {
		t.Errorf("linked version = %q, want 1.0.0", v)
	}
}
