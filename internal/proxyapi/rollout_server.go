package proxyapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// Defaults of the rollout evaluator.
const (
	// DefaultRolloutEvery is how often the proxy evaluates the rollout.
	DefaultRolloutEvery = 30 * time.Second
	// DefaultRolloutRefreshEvery is how often the proxy re-reads the
	// groups' states between evaluations.
	DefaultRolloutRefreshEvery = time.Second
	// DefaultRolloutPresentAfter: a host that reported within it counts as
	// present (agents report on every run of their update timer).
	DefaultRolloutPresentAfter = 2 * time.Hour
	// rolloutHistoryShown is how many transitions status shows.
	rolloutHistoryShown = 50
)

// answerKind is which of a group's find answers a host gets.
type answerKind int

const (
	// answerTarget: the target version, inside the group's windows.
	answerTarget answerKind = iota
	// The start version, updating nowhere, for a reason: the group's turn
	// has not come (or no evaluation has placed it yet); the group is in
	// canary and the host is not one of its canaries; the group is
	// halted; an earlier group is halted or rolled back.
	answerHoldWaiting
	answerHoldCanary
	answerHoldHalted
	answerHoldEarlier
	// answerStartBack: the start version inside the windows, so that the
	// hosts of a rolled-back group move back (a host moves down only to a
	// version it ran before: one installed at the target stays there).
	answerStartBack
	answerKinds
)

// holdReason is what the find answer of kind k tells the hosts of group
// about the rollout to target: why they are held at (or moved back to)
// the start version. Empty for the target.
func holdReason(k answerKind, group, target string) string {
	switch k {
	case answerHoldWaiting:
		return fmt.Sprintf("the rollout to %s has not reached group %s yet", target, group)
	case answerHoldCanary:
		return fmt.Sprintf("group %s tries %s on its canaries first", group, target)
	case answerHoldHalted:
		return fmt.Sprintf("the rollout to %s is halted in group %s", target, group)
	case answerHoldEarlier:
		return fmt.Sprintf("the rollout to %s is halted or rolled back in a group before %s", target, group)
	case answerStartBack:
		return fmt.Sprintf("the rollout to %s was rolled back in group %s", target, group)
	}
	return ""
}

// rolloutView is what find needs of the rollout, rebuilt by each
// evaluation from the store.
type rolloutView struct {
	policy *Policy // the policy it was built for
	groups map[string]groupView
}

// groupView is one group's part of the rollout view.
type groupView struct {
	state rollout.State
	// heldBack: an earlier group is halted or rolled back.
	heldBack bool
	// canaries are the updater ids of the group's canaries.
	canaries map[string]bool
}

// answerKind says which answer group g serves to the updater updaterID.
// Without a staged rollout every host gets the target; with one, a group
// the view does not know yet (no evaluation since the policy changed) is
// unstarted.
func (s *Server) answerKind(p *Policy, g *groupAnswer, updaterID string) answerKind {
	if !p.Rollout() || g.group == nil {
		return answerTarget
	}
	v := s.roll.Load()
	if v == nil || v.policy != p {
		return answerHoldWaiting
	}
	gv, ok := v.groups[g.group.Name]
	if !ok {
		return answerHoldWaiting
	}
	if rollout.Serves(gv.state, gv.canaries[updaterID], gv.heldBack) {
		return answerTarget
	}
	switch {
	case gv.state == rollout.RolledBack:
		return answerStartBack
	case gv.state == rollout.Halted:
		return answerHoldHalted
	case gv.heldBack:
		return answerHoldEarlier
	case gv.state == rollout.Canary:
		return answerHoldCanary
	}
	return answerHoldWaiting
}

// RunRollout evaluates the rollout every RolloutEvery, and at once when
// the policy changes, until ctx is done. Failures are logged and tried
// again on the next tick. Between evaluations it re-reads the groups'
// states every RolloutRefreshEvery: a transition another proxy made, or
// an operator's halt through the CLI, which writes the database directly,
// then changes this proxy's find answers within that time, not at its
// next evaluation.
func (s *Server) RunRollout(ctx context.Context) {
	evaluate := time.NewTicker(s.cfg.RolloutEvery)
	defer evaluate.Stop()
	refresh := time.NewTicker(s.cfg.RolloutRefreshEvery)
	defer refresh.Stop()
	for {
		if err := s.EvaluateRollout(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("Rollout evaluation failed; trying again later.", "error", err.Error())
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-evaluate.C:
				break wait
			case <-s.rollKick:
				break wait
			case <-refresh.C:
				// A failure here is the database's, which the evaluation
				// and /readyz report; find keeps the last view.
				if err := s.RefreshRollout(ctx); err != nil && ctx.Err() == nil {
					s.logger.Debug("Rollout refresh failed; find keeps the last states read.", "error", err.Error())
				}
			}
		}
	}
}

// rolloutPolicy returns the policy in force when it runs a staged rollout
// and the proxy has a store for its state; nil otherwise.
func (s *Server) rolloutPolicy() *Policy {
	if p := s.Policy(); p.Rollout() && s.cfg.Rollout != nil {
		return p
	}
	return nil
}

// RefreshRollout re-reads the groups' states and rebuilds the view find
// serves from, without evaluating (no counts over the hosts, no
// transitions).
func (s *Server) RefreshRollout(ctx context.Context) error {
	s.rollMu.Lock()
	defer s.rollMu.Unlock()
	p := s.rolloutPolicy()
	if p == nil {
		return nil
	}
	return s.refreshView(ctx, p)
}

// kickRollout asks RunRollout to evaluate now.
func (s *Server) kickRollout() {
	select {
	case s.rollKick <- struct{}{}:
	default:
	}
}

// EvaluateRollout reads the groups' states and census counts from the
// store, makes the transitions rollout.Evaluate decides (each one guarded
// write: another proxy may have made it first), and rebuilds the view
// find serves from. Without a staged rollout it does nothing.
func (s *Server) EvaluateRollout(ctx context.Context) error {
	s.rollMu.Lock()
	defer s.rollMu.Unlock()
	p := s.rolloutPolicy()
	if p == nil {
		return nil
	}
	now := s.now()
	target := p.TargetVersion.String()
	states, counts, err := s.readRollout(ctx, p, now)
	if err != nil {
		return err
	}
	open := func(name string) bool {
		g := p.Group(name)
		return p.Schedule == ScheduleImmediate || g == nil || g.Schedule.Open(now)
	}
	byName := make(map[string]rollout.GroupState, len(states))
	for _, st := range states {
		byName[st.Name] = st
	}
	for _, tr := range rollout.Evaluate(p.Plan(), states, counts, open, now) {
		st := byName[tr.Group]
		tr.Revision, tr.Initial, tr.Canaries, tr.Actor = st.Revision, st.Initial, st.Canaries, "proxy"
		if tr.From == rollout.Unstarted {
			if tr, err = s.startGroup(ctx, p, tr, counts[tr.Group], now); err != nil {
				return err
			}
			if tr.To == "" {
				continue
			}
		}
		if err := s.storeTransition(ctx, target, tr, now); err != nil {
			return err
		}
	}
	return s.refreshView(ctx, p)
}

// readRollout reads every group's state (unstarted without a row) and its
// counts, with the canaries' results for groups in canary.
func (s *Server) readRollout(ctx context.Context, p *Policy, now time.Time) ([]rollout.GroupState, map[string]rollout.Counts, error) {
	target := p.TargetVersion.String()
	stored, err := s.cfg.Rollout.RolloutGroups(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	counts, err := s.cfg.Rollout.RolloutCounts(ctx, target, now.Add(-s.cfg.RolloutPresentAfter))
	if err != nil {
		return nil, nil, err
	}
	states := fillStates(p, stored)
	for _, st := range states {
		c := counts[st.Name]
		c.Initial = st.Initial
		if len(st.Canaries) > 0 {
			if c.Canaries, err = s.canaryResults(ctx, st.Canaries, target); err != nil {
				return nil, nil, err
			}
		}
		counts[st.Name] = c
	}
	return states, counts, nil
}

// fillStates returns one state per group of p, unstarted for the groups
// without a stored row.
func fillStates(p *Policy, stored []rollout.GroupState) []rollout.GroupState {
	byName := make(map[string]rollout.GroupState, len(stored))
	for _, st := range stored {
		byName[st.Name] = st
	}
	out := make([]rollout.GroupState, 0, len(p.Groups))
	for _, g := range p.Groups {
		st, ok := byName[g.Name]
		if !ok {
			st = rollout.GroupState{Name: g.Name, State: rollout.Unstarted}
		}
		out = append(out, st)
	}
	return out
}

// canaryResults reads the canaries' results at target; a canary that no
// longer reports has not reported.
func (s *Server) canaryResults(ctx context.Context, canaries []rollout.Host, target string) ([]rollout.CanaryResult, error) {
	ids := make([]string, len(canaries))
	for i, c := range canaries {
		ids[i] = c.HostID
	}
	hosts, err := s.cfg.Rollout.RolloutHostResults(ctx, ids)
	if err != nil {
		return nil, err
	}
	found := make(map[string]rollout.HostResult, len(hosts))
	for _, h := range hosts {
		found[h.HostID] = h
	}
	out := make([]rollout.CanaryResult, len(ids))
	for i, id := range ids {
		out[i] = rollout.CanaryResult{HostID: id}
		if h, ok := found[id]; ok {
			out[i] = rollout.CanaryOutcome(h, target)
		}
	}
	return out, nil
}

// startGroup completes a transition out of unstarted: the group's initial
// count, and its canaries picked among the hosts that reported recently.
// A group that needs canaries and has no candidate yet does not start (the
// returned transition has no To).
func (s *Server) startGroup(ctx context.Context, p *Policy, tr rollout.Transition, c rollout.Counts, now time.Time) (rollout.Transition, error) {
	tr.Initial = c.Present
	g := p.Group(tr.Group)
	if tr.To != rollout.Canary || g == nil {
		return tr, nil
	}
	hosts, err := s.cfg.Rollout.RolloutHosts(ctx, tr.Group, now.Add(-s.cfg.RolloutPresentAfter))
	if err != nil {
		return tr, err
	}
	byID := make(map[string]rollout.Host, len(hosts))
	ids := make([]string, len(hosts))
	for i, h := range hosts {
		byID[h.HostID], ids[i] = h, h.HostID
	}
	picked := rollout.PickCanaries(tr.Group, ids, g.CanaryCount)
	if len(picked) == 0 {
		s.logger.Info("Rollout group waits for hosts that report an updater id before picking canaries.", "group", tr.Group)
		return rollout.Transition{}, nil
	}
	tr.Canaries = make([]rollout.Host, len(picked))
	for i, id := range picked {
		tr.Canaries[i] = byID[id]
	}
	tr.Reason = fmt.Sprintf("%s; canaries: %d", tr.Reason, len(picked))
	return tr, nil
}

// storeTransition makes tr as one guarded write, and logs and counts it
// when it applied.
func (s *Server) storeTransition(ctx context.Context, target string, tr rollout.Transition, now time.Time) error {
	ok, err := s.cfg.Rollout.RolloutTransition(ctx, target, tr, now)
	if err != nil {
		return err
	}
	if !ok {
		s.logger.Debug("Rollout transition already made elsewhere.", "group", tr.Group, "from", string(tr.From), "to", string(tr.To))
		return nil
	}
	level := slog.LevelInfo
	if tr.To == rollout.Halted || tr.To == rollout.RolledBack {
		level = slog.LevelWarn
	}
	s.logger.Log(ctx, level, "Rollout group moved.", "group", tr.Group, "from", string(tr.From), "to", string(tr.To),
		"reason", tr.Reason, "actor", tr.Actor, "target_version", target)
	s.metrics.rolloutTransitions.WithLabelValues(tr.Group, string(tr.From), string(tr.To), tr.Actor).Inc()
	return nil
}

// refreshView rebuilds the view find serves from, from the stored states.
func (s *Server) refreshView(ctx context.Context, p *Policy) error {
	stored, err := s.cfg.Rollout.RolloutGroups(ctx, p.TargetVersion.String())
	if err != nil {
		return err
	}
	states := fillStates(p, stored)
	plan := p.Plan()
	v := &rolloutView{policy: p, groups: make(map[string]groupView, len(states))}
	for i, st := range states {
		gv := groupView{state: st.State, heldBack: rollout.HeldBack(plan, states, i), canaries: map[string]bool{}}
		for _, c := range st.Canaries {
			gv.canaries[c.UpdaterID] = true
		}
		v.groups[st.Name] = gv
		s.metrics.setRolloutState(st.Name, st.State)
	}
	s.roll.Store(v)
	return nil
}

// ErrNoRollout is returned by operator actions when the policy runs no
// staged rollout or the proxy has no store for one.
var ErrNoRollout = errors.New("no staged rollout: the policy sets no start_version, or the proxy has no census database")

// ErrUnknownGroup is returned by operator actions on a group the policy
// does not define.
var ErrUnknownGroup = errors.New("no such group in the policy")

// RolloutAction applies an operator's action to group (halt, resume,
// mark-done, rollback) as one guarded write, then re-evaluates. Errors:
// ErrNoRollout, ErrUnknownGroup, rollout.ErrNotAllowed (the action does
// not apply to the group's state), or a store error.
func (s *Server) RolloutAction(ctx context.Context, group string, a rollout.Action, reason string) (rollout.Transition, error) {
	p := s.rolloutPolicy()
	if p == nil {
		return rollout.Transition{}, ErrNoRollout
	}
	tr, err := ApplyRolloutAction(ctx, s.cfg.Rollout, p, group, a, reason, s.now())
	if err != nil {
		return tr, err
	}
	s.logger.Warn("Rollout group moved by an operator.", "group", tr.Group, "from", string(tr.From), "to", string(tr.To), "reason", tr.Reason)
	s.metrics.rolloutTransitions.WithLabelValues(tr.Group, string(tr.From), string(tr.To), tr.Actor).Inc()
	return tr, s.EvaluateRollout(ctx)
}

// ApplyRolloutAction applies an operator's action to group in st for
// policy p at now (see RolloutAction); the CLI uses it on the database
// directly.
func ApplyRolloutAction(ctx context.Context, st rollout.Store, p *Policy, group string, a rollout.Action, reason string, now time.Time) (rollout.Transition, error) {
	if !p.HasGroup(group) {
		return rollout.Transition{}, fmt.Errorf("%w: %q", ErrUnknownGroup, group)
	}
	target := p.TargetVersion.String()
	stored, err := st.RolloutGroups(ctx, target)
	if err != nil {
		return rollout.Transition{}, err
	}
	var cur rollout.GroupState
	for _, g := range fillStates(p, stored) {
		if g.Name == group {
			cur = g
		}
	}
	tr, err := rollout.Apply(group, cur.State, a, reason)
	if err != nil {
		return tr, err
	}
	tr.Revision, tr.Initial, tr.Canaries, tr.Actor = cur.Revision, cur.Initial, cur.Canaries, "operator"
	ok, err := st.RolloutTransition(ctx, target, tr, now)
	if err != nil {
		return tr, err
	}
	if !ok {
		return tr, fmt.Errorf("%w: group %s changed while the action was applied; look at the status and try again", rollout.ErrNotAllowed, group)
	}
	return tr, nil
}
