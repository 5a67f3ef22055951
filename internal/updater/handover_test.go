package updater

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater/install"
)

// An update of a running agent whose unit is unchanged reloads it: a new
// process on the new version takes over and nothing restarts the agent.
func TestHandoverByReload(t *testing.T) {
	e, u, sd := newSystemdHost(t, pub{"2.0.0", false})
	restarts := sd.restarts
	sd.calls = nil
	e.setTarget("2.0.0", true, 0)
	if _, err := u.Update(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if sd.running != "2.0.0" || sd.restarts != restarts || sd.reloads != 1 {
		t.Fatalf("running %q, restarts %d -> %d, reloads %d; want 2.0.0 by one reload", sd.running, restarts, sd.restarts, sd.reloads)
	}
	if want := []string{"reload", "handover 2.0.0"}; !slices.Equal(sd.calls, want) {
		t.Fatalf("systemd calls %v, want %v", sd.calls, want)
	}
}

// A reload cannot apply everything: the agent restarts when it is not
// running, when the unit's [Service] section changes, and when the running
// process was started with another command line (an older unit that ran a
// versioned path and wrote no PID file).
func TestHandoverRestartsWhenReloadCannotApply(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(u *Updater, sd *fakeSystemd)
	}{
		{"agent stopped", func(u *Updater, sd *fakeSystemd) { sd.running = "" }},
		{"service section changed", func(u *Updater, sd *fakeSystemd) {
			u.Units.AgentArgs = []string{"start", "--config", "/etc/teleport.yaml", "--diag-addr=127.0.0.1:3000"}
		}},
		{"started by an older unit", func(u *Updater, sd *fakeSystemd) {
			sd.startedWith = []string{"/var/lib/teleport/versions/1.0.0/bin/teleport", "start", "--config", "/etc/teleport.yaml"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, u, sd := newSystemdHost(t, pub{"2.0.0", false})
			tc.before(u, sd)
			restarts := sd.restarts
			e.setTarget("2.0.0", true, 0)
			if _, err := u.Update(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			if sd.running != "2.0.0" || sd.restarts != restarts+1 || sd.reloads != 0 {
				t.Fatalf("running %q, restarts %d -> %d, reloads %d; want 2.0.0 by a restart (calls %v)", sd.running, restarts, sd.restarts, sd.reloads, sd.calls)
			}
		})
	}
}

// A new version that never takes over (it fails before the old process
// hands over) fails its health check; the old process still runs the
// previous version, so the way back leaves it alone.
func TestHandoverNoTakeoverKeepsOldProcess(t *testing.T) {
	e, u, sd := newSystemdHost(t, pub{"2.0.0", false})
	sd.noTakeover = true
	pid, restarts := sd.pid, sd.restarts
	e.setTarget("2.0.0", true, 0)
	_, err := u.Update(context.Background(), true)
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "no new process took over") {
		t.Fatalf("update = %v, want a rollback because no new process took over", err)
	}
	cfg := e.config()
	if sd.running != "1.0.0" || sd.pid != pid || sd.restarts != restarts || cfg.Status.Active != "1.0.0" || !cfg.Status.IsSkipped("2.0.0") {
		t.Fatalf("after rollback: running %q, pid %d -> %d, restarts %d -> %d, status %+v", sd.running, pid, sd.pid, restarts, sd.restarts, cfg.Status)
	}
}

// The process that takes over must run the new version.
func TestHandoverWrongVersionRollsBack(t *testing.T) {
	e, u, sd := newSystemdHost(t, pub{"2.0.0", false})
	sd.reloadRuns = "1.0.0"
	e.setTarget("2.0.0", true, 0)
	_, err := u.Update(context.Background(), true)
	if !errors.Is(err, ErrRolledBack) || !errors.Is(err, install.ErrUnhealthy) || !strings.Contains(err.Error(), "1.0.0/bin/teleport, not") {
		t.Fatalf("update = %v, want a rollback because the new process runs 1.0.0", err)
	}
	if cfg := e.config(); sd.running != "1.0.0" || cfg.Status.Active != "1.0.0" {
		t.Fatalf("after rollback: running %q, status %+v", sd.running, cfg.Status)
	}
}
