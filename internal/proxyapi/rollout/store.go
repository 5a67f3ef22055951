package rollout

import (
	"context"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// Store keeps the rollout's state where every proxy sharing a census
// database sees it. census/store implements it (SQLite; PostgreSQL when
// several proxies share one database), and storetest.RunRollout is the
// conformance suite every implementation passes.
//
// Each group has one row per target version: a new target starts a new
// rollout, every group unstarted again.
type Store interface {
	// RolloutGroups returns the stored state of the groups for target;
	// a group without a row for target is not returned (it is unstarted).
	RolloutGroups(ctx context.Context, target string) ([]GroupState, error)
	// RolloutTransition stores t for target at now as one guarded write:
	// it applies only when the group's row for target is still in t.From at
	// t.Revision (no row for target when t.Revision is 0), and then adds
	// t to the history in the same transaction. It returns false, and
	// changes nothing, when the guard does not hold (another proxy or an
	// operator moved the group first).
	RolloutTransition(ctx context.Context, target string, t Transition, now time.Time) (bool, error)
	// RolloutHistory returns the latest limit transitions, newest first.
	RolloutHistory(ctx context.Context, limit int) ([]HistoryEntry, error)
	// RolloutCounts counts, per group, the hosts seen since since: present,
	// up to date (running target), tried (running target or last tried
	// it) and failed (last tried target and failed, not running it).
	RolloutCounts(ctx context.Context, target string, since time.Time) (map[string]Counts, error)
	// RolloutHosts returns the hosts of group seen since since that sent
	// an updater id, the candidates for canaries.
	RolloutHosts(ctx context.Context, group string, since time.Time) ([]Host, error)
	// RolloutHostResults returns the latest state of the hosts hostIDs
	// (unknown ones are left out).
	RolloutHostResults(ctx context.Context, hostIDs []string) ([]HostResult, error)
}

// HistoryEntry is one stored transition.
type HistoryEntry struct {
	Time   time.Time `json:"time"`
	Target string    `json:"target"`
	Group  string    `json:"group"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Reason string    `json:"reason"`
	Actor  string    `json:"actor"`
}

// HostResult is a host's latest report as far as the rollout cares: the
// version it runs and its last update's outcome with its run log.
type HostResult struct {
	HostID   string    `json:"host_id"`
	Version  string    `json:"version"`
	LastSeen time.Time `json:"last_seen"`
	// Target is the version its last update tried; Result is success,
	// failure or none; ErrorCode and Error say why it failed.
	Target    string `json:"target,omitempty"`
	Result    string `json:"result"`
	ErrorCode string `json:"error_code,omitempty"`
	Error     string `json:"error,omitempty"`
	// Steps is the last run's log.
	Steps []api.RunStep `json:"steps,omitempty"`
}

// CanaryOutcome turns a canary's latest state into its result at target:
// reported once its last update tried target (or it runs target), a
// success when it runs target after a successful update.
func CanaryOutcome(h HostResult, target string) CanaryResult {
	c := CanaryResult{HostID: h.HostID}
	switch {
	case h.Version == target && h.Result != "failure":
		c.Reported, c.Success = true, true
	case h.Target == target && h.Result == "failure":
		c.Reported = true
	}
	return c
}
