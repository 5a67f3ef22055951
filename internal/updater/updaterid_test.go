package updater

import (
	"context"
	"testing"

	"github.com/gravitational/teleport-update/api"
)

// TestNewUpdaterID: random, and in the form the proxy accepts.
func TestNewUpdaterID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		id, err := newUpdaterID()
		if err != nil {
			t.Fatal(err)
		}
		if !api.ValidUpdaterID(id) || id[14] != '4' || seen[id] {
			t.Fatalf("newUpdaterID = %q: not a fresh version 4 UUID", id)
		}
		seen[id] = true
	}
}

// TestUpdaterIDKeptAndSent: install makes the updater id once and keeps it
// in update.yaml; every find request carries it.
func TestUpdaterIDKeptAndSent(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.publish("1.0.0", false)
	e.publish("1.1.0", false)
	u := e.updater()
	e.install(u, "1.0.0")
	id := e.config().Spec.UpdaterID
	if !api.ValidUpdaterID(id) {
		t.Fatalf("update.yaml updater_id = %q; want a UUID", id)
	}
	e.setTarget("1.1.0", true, 0)
	if _, err := u.Update(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	got := e.findQuery.Get(api.FindQueryUpdaterID)
	e.mu.Unlock()
	if got != id {
		t.Errorf("find sent updater_id %q; want %q", got, id)
	}
	e.install(u, "1.1.0")
	if again := e.config().Spec.UpdaterID; again != id {
		t.Errorf("a re-install changed the updater id from %q to %q", id, again)
	}
}
