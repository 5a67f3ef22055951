package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goldenfile "github.com/gravitational/teleport-update/internal/golden"

	"github.com/gravitational/teleport-update/api"
)

// golden compares got with testdata/<test name>.golden (rewritten with -update).
func golden(t *testing.T, got []byte) {
	t.Helper()
	// Both backends export the same: one golden file, named without the
	// backend's subtest.
	name := strings.Replace(strings.Replace(t.Name(), "/sqlite/", "/", 1), "/postgres/", "/", 1)
	goldenfile.Check(t, filepath.Join("testdata", name+".golden"), got)
}

func TestExport(t *testing.T) {
	t.Parallel()
	forBackends(t, func(t *testing.T, db newDB) {
		ctx := context.Background()
		s, _ := openStore(t, db, Options{})
		hosts := []api.Report{
			report(0, func(r *api.Report) {
				r.Services = []string{"node", "kube"}
				r.InstallMethods = []string{"node_script", "systemctl", "teleport-update"}
				r.CloudEnvironment = api.CloudAWS
				r.LastUpdateResult = &api.UpdateResult{Time: t0.Add(-time.Hour), Target: "16.4.6", Success: true}
			}),
			report(1, func(r *api.Report) {
				r.Services = nil
				r.InstallMethods = []string{"dockerfile", "teleport-update"}
				r.ContainerRuntime = api.RuntimeDocker
				r.ContainerOrchestrator = "kubernetes-v1.29.4-eks-036c24b"
				r.GlibcVersion = ""
				r.UpdaterStatus = api.StatusPinned
				r.LastUpdateResult = &api.UpdateResult{Time: t0.Add(-time.Hour), Target: "16.4.7", ErrorCode: "health_check"}
			}),
			report(2, func(r *api.Report) { r.Version = "" }),
		}
		for i, r := range hosts {
			if err := s.Ingest(ctx, "production", r, ident(r), t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		// Host 1 then updates successfully: its history shows both, newest first.
		retry := hosts[1]
		retry.Version = "16.4.7"
		retry.LastUpdateResult = &api.UpdateResult{Time: t0.Add(10 * time.Minute), Target: "16.4.7", Success: true}
		if err := s.Ingest(ctx, "production", retry, ident(retry), t0.Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{FormatJSON, FormatPostHog} {
			t.Run(format, func(t *testing.T) {
				var out bytes.Buffer
				if err := s.Export(ctx, &out, format); err != nil {
					t.Fatalf("Export: %v", err)
				}
				// Every line is one JSON object.
				for line := range bytes.SplitSeq(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
					if !json.Valid(line) {
						t.Errorf("not a JSON line: %s", line)
					}
				}
				golden(t, out.Bytes())
			})
		}
		var out bytes.Buffer
		if err := s.Export(ctx, &out, "csv"); !errors.Is(err, ErrUnknownFormat) || out.Len() != 0 {
			t.Errorf("Export(csv) = %v, wrote %d bytes; want ErrUnknownFormat and nothing", err, out.Len())
		}
	})
}
