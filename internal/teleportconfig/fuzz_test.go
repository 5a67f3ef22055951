package teleportconfig

import (
	"errors"
	"testing"

	"github.com/gravitational/teleport-update/internal/fuzzwatch"
)

// FuzzParse feeds arbitrary text to Parse: it returns a Config or an
// error wrapping ErrInvalid, never panics, never hangs (the watchdog turns
// a slow input into a crash), and a proxy address it returns is never
// blank.
func FuzzParse(f *testing.F) {
	for _, seed := range fuzzwatch.HardYAML() {
		f.Add(seed)
	}
	f.Add([]byte("version: v3\nteleport:\n  proxy_server: p.example.com:443\n"))
	f.Add([]byte("version: v2\nteleport:\n  auth_servers: [a:3025, b:3080]\n"))
	f.Add([]byte("teleport:\n  auth_servers: a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzwatch.Start()()
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not categorised: %v", err)
			}
			return
		}
		if p := c.ProxyAddr(); p != "" && (p[0] == ' ' || p[len(p)-1] == ' ') {
			t.Fatalf("ProxyAddr %q not trimmed", p)
		}
	})
}
