package proxyapi

import (
	"net/netip"
	"os/exec"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// runBash runs script with bash and returns its stdout.
func runBash(t *testing.T, script string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("bash")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(path, "-c", script).Output()
	if err != nil {
		t.Fatalf("bash -c %q: %v", script, err)
	}
	return string(out), nil
}

// netipFrom returns the IPv4 address with value v.
func netipFrom(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
