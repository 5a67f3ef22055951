package install

import (
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/releasetest"
)

// teleportExample is Teleport's examples/systemd/teleport.service, with
// the setting the test releases add to it.
const teleportExample = releasetest.ExampleUnit

func TestRenderFromExample(t *testing.T) {
	for _, tc := range []struct {
		name    string
		example string
		fips    bool
	}{
		{"teleport", teleportExample, false},
		{"teleport-fips", teleportExample, true},
		{"minimal", "[Service]\nExecStart=/opt/teleport start\nUser=teleport\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RenderAgentService(UnitOptions{Version: "16.4.6", FIPS: tc.fips, Example: []byte(tc.example)})
			golden(t, tc.name, got)
			if !strings.HasPrefix(string(got), unitMarker+"\n") {
				t.Errorf("rendered unit lacks the marker:\n%s", got)
			}
		})
	}
}

// TestRenderFromExampleFallsBack: a release unit the renderer does not
// understand gives the built-in unit, never a half-transformed one.
func TestRenderFromExampleFallsBack(t *testing.T) {
	builtIn := RenderAgentService(UnitOptions{Version: "16.4.6"})
	for name, example := range map[string]string{
		"no service":      "[Unit]\nDescription=x\n",
		"continued line":  "[Service]\nExecStart=/usr/local/bin/teleport \\\n start\n",
		"another section": "[Service]\nExecStart=/x\n[Socket]\nListenStream=1\n",
		"setting first":   "ExecStart=/x\n[Service]\n",
		"not a setting":   "[Service]\nExecStart\n",
	} {
		if got := RenderAgentService(UnitOptions{Version: "16.4.6", Example: []byte(example)}); string(got) != string(builtIn) {
			t.Errorf("%s: got\n%s\nwant the built-in unit", name, got)
		}
	}
}
