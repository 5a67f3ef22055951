package systemd

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/releasetest"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// TestUnitsVerify renders the three units with updater/install and has the
// container's systemd-analyze verify accept them, with the binaries they
// name in place; any complaint about our units fails the test.
func TestUnitsVerify(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	const ver = "1.2.3"
	cli := teleportUpdateBinary(t)
	agentDir := t.TempDir()
	releasetest.BuildAgent(t, agentDir, ver, releasetest.ModeOK)
	agent := filepath.Join(agentDir, releasetest.BinaryName(ver, releasetest.ModeOK))

	opts := install.UnitOptions{Version: ver, UpdaterVersion: "1.5.0"}
	units := map[string][]byte{
		agentUnit:    install.RenderAgentService(opts),
		updaterUnit:  install.RenderUpdaterService(opts),
		updaterTimer: install.RenderUpdaterTimer(opts),
	}
	h := bootHost(t, func(root string) error {
		for name, body := range units {
			if err := writeFile(root, "/etc/systemd/system/"+name, body, 0o644); err != nil {
				return err
			}
		}
		for src, dst := range map[string]string{agent: versionsDir + "/" + ver + "/bin/teleport", cli: cliPath} {
			data, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := writeFile(root, dst, data, 0o755); err != nil {
				return err
			}
		}
		// The agent unit runs the link.
		return os.Symlink(versionsDir+"/"+ver+"/bin/teleport", filepath.Join(root, agentLinkPath))
	})

	args := []string{"systemd-analyze", "verify"}
	for name := range units {
		args = append(args, path.Join("/etc/systemd/system", name))
	}
	out, errOut, err := h.run(args...)
	if err != nil {
		t.Fatalf("systemd-analyze verify rejected the units: %v\n%s%s", err, out, errOut)
	}
	for _, line := range strings.Split(out+errOut, "\n") {
		for name := range units {
			if strings.Contains(line, name) {
				t.Errorf("systemd-analyze verify complains about %s: %s", name, line)
			}
		}
	}
	for name, body := range units {
		t.Logf("%s accepted:\n%s", name, body)
	}
	sec, _, _ := h.run("systemd-analyze", "security", "--no-pager", updaterUnit)
	if i := strings.LastIndex(sec, "Overall exposure level"); i >= 0 {
		t.Logf("systemd-analyze security %s: %s", updaterUnit, strings.TrimSpace(sec[i:]))
	}
}
