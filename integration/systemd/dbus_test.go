package systemd

import (
	"os"
	"strings"
	"testing"
)

// inContainerTests are the tests of ./incontainer that must run and pass
// inside the container; a skip or a missing one fails the suite.
var inContainerTests = []string{
	"TestDBusStartRestartStop",
	"TestDBusUnknownUnit",
	"TestDBusFailingUnitNeedsResetFailed",
	"TestDBusEnableDisable",
	"TestCheckUnitHealth",
	"TestDBusOutlivesConnectContext",
}

// TestDBusWrapper runs the tests of ./incontainer (the D-Bus wrapper of
// updater/install and its health check) inside a container against its
// real systemd.
func TestDBusWrapper(t *testing.T) {
	requireHarness(t)
	t.Parallel()
	bin := inContainerTestBinary(t)
	const dst = "/usr/local/libexec/incontainer.test"
	h := bootHost(t, func(root string) error {
		data, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		return writeFile(root, dst, data, 0o755)
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Journal of the test units:\n%s", h.c.Journal("tu-*"))
		}
	})

	out, errOut, err := h.run("env", "TELEPORT_UPDATE_IN_CONTAINER=1", dst, "-test.v", "-test.count=1")
	t.Logf("In-container tests:\n%s%s", out, errOut)
	if err != nil {
		t.Fatalf("In-container tests failed: %v", err)
	}
	for _, name := range inContainerTests {
		if !strings.Contains(out, "--- PASS: "+name+" ") {
			t.Errorf("In-container test %s did not run and pass.", name)
		}
	}
	if strings.Contains(out, "--- SKIP") {
		t.Error("In-container tests were skipped inside the container.")
	}
}
