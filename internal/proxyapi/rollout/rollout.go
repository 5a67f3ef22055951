// Package rollout is the state machine of a staged rollout: per update
// group, unstarted → canary → active → done, plus halted (by the proxy, on
// failures it reads from census reports) and rolledback (by an operator).
// It is pure: Evaluate takes the plan, the groups' states, what the census
// says about each group and the time, and returns the transitions to make.
// The caller stores each transition as one guarded write (from the state
// it read), so that several proxies evaluating at once make it once.
package rollout

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"
)

// State is a group's place in the rollout.
type State string

// The states of a group.
const (
	// Unstarted: the group's turn has not come; it is served the start
	// version.
	Unstarted State = "unstarted"
	// Canary: only the group's canaries are served the target.
	Canary State = "canary"
	// Active: the whole group is served the target, inside its windows.
	Active State = "active"
	// Done: enough of the group runs the target (see Done).
	Done State = "done"
	// Halted: failures stopped the group; it and the groups after it are
	// served the start version until an operator resumes it.
	Halted State = "halted"
	// RolledBack: an operator sent the group back to the start version.
	RolledBack State = "rolledback"
)

// Strategy orders the groups.
type Strategy string

// Strategies of a rollout.
const (
	// HaltOnError: a group starts only when the one before it is done and
	// the wait after it has passed; a halted group stops the ones after.
	HaltOnError Strategy = "halt-on-error"
	// TimeBased: every group starts in its own windows, whatever the
	// others do.
	TimeBased Strategy = "time-based"
)

// Plan is the rollout the policy asks for.
type Plan struct {
	Strategy Strategy
	// Groups in rollout order.
	Groups []GroupPlan
	// HaltPercent is the failure rate, in percent of the hosts that tried
	// the target, at which an active group halts; 0 halts on any failure.
	HaltPercent float64
	// HaltMinHosts is how many hosts must have tried the target before
	// HaltPercent applies (canary failures always halt).
	HaltMinHosts int
}

// GroupPlan is one group's part of the plan.
type GroupPlan struct {
	Name string
	// CanaryCount is how many of the group's hosts try the target first;
	// 0 skips the canary state.
	CanaryCount int
	// Wait is how long the next group waits after this one is done
	// (halt-on-error only).
	Wait time.Duration
}

// GroupState is a group's stored state.
type GroupState struct {
	Name  string
	State State
	// Since is when the group entered State.
	Since time.Time
	// Reason says why (set for halted and rolledback).
	Reason string
	// Revision counts the writes of the group's row (0: no row for this
	// target yet); a transition applies only at the revision it read.
	Revision int64
	// Initial is how many hosts reported when the group started.
	Initial int
	// Canaries are the hosts picked when the group started.
	Canaries []Host
}

// Host is a census host as the rollout knows it: its host id (reports) and
// its updater id (find requests).
type Host struct {
	HostID    string `json:"host_id"`
	UpdaterID string `json:"updater_id"`
}

// Counts is what the census says about a group's hosts and the target.
type Counts struct {
	// Initial is how many hosts the group had when its rollout started;
	// Present how many report now.
	Initial, Present int
	// UpToDate run the target; Tried tried it (up to date or failed);
	// Failed tried and failed.
	UpToDate, Tried, Failed int
	// Canaries are the group's canaries' last results.
	Canaries []CanaryResult
}

// CanaryResult is one canary's last update result at the target.
type CanaryResult struct {
	HostID string
	// Reported: the canary reported a result at the target. Success says
	// how it went.
	Reported, Success bool
}

// Transition moves one group from one state to another; From is the state
// the caller read, so storing it is a guarded write.
type Transition struct {
	Group    string
	From, To State
	Reason   string
	// Revision is the revision of the group's row the caller read.
	Revision int64
	// Actor is who made it: "proxy" or "operator".
	Actor string
	// Initial and Canaries are stored with the new state (carried over
	// from the read state, or set when the group starts).
	Initial  int
	Canaries []Host
}

func (t Transition) String() string {
	return fmt.Sprintf("%s: %s → %s (%s)", t.Group, t.From, t.To, t.Reason)
}

// Evaluate returns the transitions the rollout makes at now. states must
// hold one entry per group of the plan, in any order; counts are keyed by
// group name. open says whether a group's window is open at now (time-based
// groups start only in their window). It never moves a group out of
// halted or rolledback: only an operator does (Resume, Rollback).
func Evaluate(p Plan, states []GroupState, counts map[string]Counts, open func(group string) bool, now time.Time) []Transition {
	byName := make(map[string]GroupState, len(states))
	for _, s := range states {
		byName[s.Name] = s
	}
	var out []Transition
	for i, g := range p.Groups {
		s, ok := byName[g.Name]
		if !ok {
			s = GroupState{Name: g.Name, State: Unstarted}
		}
		// One step per group per call: a later group sees this group's
		// new state on the next evaluation, once it is stored.
		if t, ok := p.step(i, s, counts[g.Name], byName, open, now); ok {
			out = append(out, t)
		}
	}
	return out
}

// step returns the transition of group i from state s, if any.
func (p Plan) step(i int, s GroupState, c Counts, byName map[string]GroupState, open func(string) bool, now time.Time) (Transition, bool) {
	g := p.Groups[i]
	move := func(to State, reason string) (Transition, bool) {
		return Transition{Group: g.Name, From: s.State, To: to, Reason: reason}, true
	}
	switch s.State {
	case Unstarted:
		if heldBack(p, byName, i) {
			break
		}
		if reason, ok := p.mayStart(i, byName, open, now); ok {
			if g.CanaryCount > 0 {
				return move(Canary, reason)
			}
			return move(Active, reason)
		}
	case Canary:
		return canaryStep(g, c, move)
	case Active:
		if reason, halt := p.shouldHalt(c); halt {
			return move(Halted, reason)
		}
		if IsDone(c) {
			return move(Done, fmt.Sprintf("%d of %d hosts run the target", c.UpToDate, c.Present))
		}
	}
	return Transition{}, false
}

// canaryStep moves a group in canary: halted on any canary failure,
// active once every canary succeeded.
func canaryStep(g GroupPlan, c Counts, move func(State, string) (Transition, bool)) (Transition, bool) {
	succeeded := 0
	for _, k := range c.Canaries {
		switch {
		case k.Reported && !k.Success:
			return move(Halted, "canary "+k.HostID+" failed to update")
		case k.Reported:
			succeeded++
		}
	}
	if len(c.Canaries) > 0 && succeeded == len(c.Canaries) {
		return move(Active, fmt.Sprintf("all %d canaries updated", succeeded))
	}
	return Transition{}, false
}

// mayStart says whether group i may leave unstarted at now, and why.
func (p Plan) mayStart(i int, byName map[string]GroupState, open func(string) bool, now time.Time) (string, bool) {
	g := p.Groups[i]
	// Every group starts inside its own window; under halt-on-error, also
	// only after the group before it is done and its wait has passed.
	if open != nil && !open(g.Name) {
		return "", false
	}
	if p.Strategy == TimeBased || i == 0 {
		return "its window is open", true
	}
	prev := p.Groups[i-1]
	ps := byName[prev.Name]
	if ps.State != Done {
		return "", false
	}
	if now.Before(ps.Since.Add(prev.Wait)) {
		return "", false
	}
	return fmt.Sprintf("group %s is done, its wait of %s has passed and the window is open", prev.Name, prev.Wait), true
}

// shouldHalt says whether an active group's failures cross the threshold.
func (p Plan) shouldHalt(c Counts) (string, bool) {
	if c.Failed == 0 || c.Tried < p.HaltMinHosts || c.Tried == 0 {
		return "", false
	}
	rate := 100 * float64(c.Failed) / float64(c.Tried)
	if rate < p.HaltPercent {
		return "", false
	}
	return fmt.Sprintf("%d of %d hosts that tried the target failed (%.1f%%, threshold %.1f%%)", c.Failed, c.Tried, rate, p.HaltPercent), true
}

// IsDone is RFD 184's rule: at least 90% of the hosts the group had when
// it started still report, and at least 90% of those run the target.
func IsDone(c Counts) bool {
	if c.Present == 0 {
		return false
	}
	return float64(c.Present) >= 0.9*float64(c.Initial) && float64(c.UpToDate) >= 0.9*float64(c.Present)
}

// Serves says whether a group in state s serves the target (rather than
// the start version) to a host, given whether the host is one of the
// group's canaries. halted says whether an earlier group is halted or
// rolled back under halt-on-error, which holds every later group back.
func Serves(s State, canary, halted bool) bool {
	if halted {
		return false
	}
	switch s {
	case Canary:
		return canary
	case Active, Done:
		return true
	}
	return false
}

// HeldBack says whether group i is held at the start version by an
// earlier group that is halted or rolled back, whatever the strategy: a
// release that failed one group is not pushed to the next.
func HeldBack(p Plan, states []GroupState, i int) bool {
	byName := make(map[string]GroupState, len(states))
	for _, s := range states {
		byName[s.Name] = s
	}
	return heldBack(p, byName, i)
}

func heldBack(p Plan, byName map[string]GroupState, i int) bool {
	for _, g := range p.Groups[:i] {
		if s := byName[g.Name].State; s == Halted || s == RolledBack {
			return true
		}
	}
	return false
}

// PickCanaries chooses n canaries of a group among candidates (host ids
// that reported recently): the ones with the smallest SHA-256 of group and
// host id. The choice is stable (the same hosts while they report) and
// spread (unrelated to how hosts were named or enrolled).
func PickCanaries(group string, candidates []string, n int) []string {
	type ranked struct {
		id  string
		key [sha256.Size]byte
	}
	rs := make([]ranked, 0, len(candidates))
	for _, id := range candidates {
		rs = append(rs, ranked{id: id, key: sha256.Sum256([]byte(group + "\x00" + id))})
	}
	slices.SortFunc(rs, func(a, b ranked) int { return bytes.Compare(a.key[:], b.key[:]) })
	out := make([]string, 0, min(n, len(rs)))
	for _, r := range rs[:min(n, len(rs))] {
		out = append(out, r.id)
	}
	return out
}

// Action is an operator's command on a group.
type Action string

// Operator actions.
const (
	ActionHalt     Action = "halt"
	ActionResume   Action = "resume"
	ActionMarkDone Action = "mark-done"
	ActionRollback Action = "rollback"
)

// ErrNotAllowed is wrapped when an action does not apply to a state.
var ErrNotAllowed = errors.New("rollout action not allowed in this state")

// Apply returns the transition an operator's action makes from state
// from, or an error wrapping ErrNotAllowed: resume applies to halted and
// rolledback groups only (back to active), halt not to done or rolledback
// groups, and an action that changes nothing is refused.
func Apply(group string, from State, a Action, reason string) (Transition, error) {
	to, ok := map[Action]State{ActionHalt: Halted, ActionResume: Active, ActionMarkDone: Done, ActionRollback: RolledBack}[a]
	switch {
	case !ok:
		return Transition{}, fmt.Errorf("%w: unknown action %q", ErrNotAllowed, a)
	case a == ActionResume && from != Halted && from != RolledBack:
		return Transition{}, fmt.Errorf("%w: group %s is %s, not halted or rolled back", ErrNotAllowed, group, from)
	case a == ActionHalt && (from == Done || from == RolledBack):
		return Transition{}, fmt.Errorf("%w: group %s is %s", ErrNotAllowed, group, from)
	case from == to:
		return Transition{}, fmt.Errorf("%w: group %s is %s already", ErrNotAllowed, group, from)
	}
	if reason == "" {
		reason = "operator: " + string(a)
	}
	return Transition{Group: group, From: from, To: to, Reason: reason}, nil
}
