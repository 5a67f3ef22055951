package proxyapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/internal/proxyapi/rollout"
)

// RolloutPath is the operators' rollout endpoint (admin token): GET for
// the status, POST RolloutPath/GROUP/ACTION (halt, resume, mark-done,
// rollback) with an optional {"reason": "..."} body to act on a group.
const RolloutPath = "/v1/webapi/rollout"

// routeRollout labels the rollout endpoint's metrics.
const routeRollout = "rollout"

// maxActionBody caps the body of an operator's action.
const maxActionBody = 4 << 10

// RolloutStatus is the rollout as operators see it.
type RolloutStatus struct {
	TargetVersion string               `json:"target_version"`
	StartVersion  string               `json:"start_version"`
	Strategy      rollout.Strategy     `json:"strategy"`
	Revision      string               `json:"revision,omitempty"`
	Groups        []RolloutGroupStatus `json:"groups"`
	// History is the latest transitions, newest first.
	History []rollout.HistoryEntry `json:"history"`
}

// RolloutGroupStatus is one group's state, counts and canaries.
type RolloutGroupStatus struct {
	Name   string        `json:"name"`
	State  rollout.State `json:"state"`
	Since  *time.Time    `json:"since,omitempty"`
	Reason string        `json:"reason,omitempty"`
	// HeldBack: an earlier group is halted or rolled back.
	HeldBack bool `json:"held_back,omitempty"`
	Initial  int  `json:"initial"`
	Present  int  `json:"present"`
	UpToDate int  `json:"up_to_date"`
	Tried    int  `json:"tried"`
	Failed   int  `json:"failed"`
	// Canaries with their latest report: result at the target (pending,
	// success or failure), last update and run log.
	Canaries []CanaryStatus `json:"canaries,omitempty"`
}

// CanaryStatus is one canary and its latest report.
type CanaryStatus struct {
	rollout.HostResult
	UpdaterID string `json:"updater_id"`
	// Outcome is pending, success or failure, at the target.
	Outcome string `json:"outcome"`
}

// BuildRolloutStatus reads the rollout of policy p from st at now; hosts
// seen within presentAfter count as present.
func BuildRolloutStatus(ctx context.Context, st rollout.Store, p *Policy, now time.Time, presentAfter time.Duration) (*RolloutStatus, error) {
	if !p.Rollout() {
		return nil, ErrNoRollout
	}
	target := p.TargetVersion.String()
	stored, err := st.RolloutGroups(ctx, target)
	if err != nil {
		return nil, err
	}
	counts, err := st.RolloutCounts(ctx, target, now.Add(-presentAfter))
	if err != nil {
		return nil, err
	}
	states := fillStates(p, stored)
	out := &RolloutStatus{TargetVersion: target, StartVersion: p.StartVersion.String(), Strategy: p.Strategy, Revision: p.Revision}
	plan := p.Plan()
	for i, g := range states {
		c := counts[g.Name]
		gs := RolloutGroupStatus{Name: g.Name, State: g.State, Reason: g.Reason, HeldBack: rollout.HeldBack(plan, states, i),
			Initial: g.Initial, Present: c.Present, UpToDate: c.UpToDate, Tried: c.Tried, Failed: c.Failed}
		if !g.Since.IsZero() {
			since := g.Since
			gs.Since = &since
		}
		if gs.Canaries, err = canaryStatus(ctx, st, g.Canaries, target); err != nil {
			return nil, err
		}
		out.Groups = append(out.Groups, gs)
	}
	if out.History, err = st.RolloutHistory(ctx, rolloutHistoryShown); err != nil {
		return nil, err
	}
	return out, nil
}

// canaryStatus reads the canaries' latest reports.
func canaryStatus(ctx context.Context, st rollout.Store, canaries []rollout.Host, target string) ([]CanaryStatus, error) {
	if len(canaries) == 0 {
		return nil, nil
	}
	ids := make([]string, len(canaries))
	for i, c := range canaries {
		ids[i] = c.HostID
	}
	hosts, err := st.RolloutHostResults(ctx, ids)
	if err != nil {
		return nil, err
	}
	found := make(map[string]rollout.HostResult, len(hosts))
	for _, h := range hosts {
		found[h.HostID] = h
	}
	out := make([]CanaryStatus, len(canaries))
	for i, c := range canaries {
		h, ok := found[c.HostID]
		if !ok {
			h = rollout.HostResult{HostID: c.HostID, Result: "none"}
		}
		out[i] = CanaryStatus{HostResult: h, UpdaterID: c.UpdaterID, Outcome: "pending"}
		if r := rollout.CanaryOutcome(h, target); r.Reported && r.Success {
			out[i].Outcome = "success"
		} else if r.Reported {
			out[i].Outcome = "failure"
		}
	}
	return out, nil
}

// RolloutActionRequest is the optional body of an operator's action.
type RolloutActionRequest struct {
	Reason string `json:"reason"`
}

// serveRollout answers the status (GET) and operators' actions (POST) to
// admin tokens.
func (s *Server) serveRollout(w http.ResponseWriter, r *http.Request) int {
	if code, ok := allowMethods(w, r, http.MethodGet, http.MethodPost); !ok {
		return code
	}
	tok, code, ok := s.authenticate(w, r)
	if !ok {
		return code
	}
	if !tok.admin {
		return writeError(w, http.StatusForbidden, "the rollout endpoint needs an admin token")
	}
	p := s.rolloutPolicy()
	if p == nil {
		return writeError(w, http.StatusNotFound, ErrNoRollout.Error())
	}
	if r.Method == http.MethodGet {
		if r.URL.Path != RolloutPath {
			return writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
		}
		st, err := BuildRolloutStatus(r.Context(), s.cfg.Rollout, p, s.now(), s.cfg.RolloutPresentAfter)
		if err != nil {
			s.logger.Error("Rollout status failed.", "error", err.Error())
			return writeError(w, http.StatusServiceUnavailable, "the rollout status is not available; retry later")
		}
		return writeJSON(w, http.StatusOK, st)
	}
	return s.serveRolloutAction(w, r)
}

// serveRolloutAction applies POST RolloutPath/GROUP/ACTION.
func (s *Server) serveRolloutAction(w http.ResponseWriter, r *http.Request) int {
	rest, _ := strings.CutPrefix(r.URL.Path, RolloutPath+"/")
	group, action, ok := strings.Cut(rest, "/")
	if !ok || checkName(group) != nil || strings.Contains(action, "/") {
		return writeError(w, http.StatusNotFound, "use POST "+RolloutPath+"/GROUP/ACTION, ACTION one of halt, resume, mark-done, rollback")
	}
	var req RolloutActionRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxActionBody+1))
	if err != nil || len(body) > maxActionBody {
		return writeError(w, http.StatusBadRequest, "the action's body is unreadable or larger than 4 KiB")
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return writeError(w, http.StatusBadRequest, "the action's body is not {\"reason\": \"...\"}: "+err.Error())
		}
	}
	tr, err := s.RolloutAction(r.Context(), group, rollout.Action(action), req.Reason)
	switch {
	case errors.Is(err, ErrUnknownGroup):
		return writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, rollout.ErrNotAllowed):
		return writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		s.logger.Error("Rollout action failed.", "group", group, "action", action, "error", err.Error())
		return writeError(w, http.StatusServiceUnavailable, "the rollout action failed; retry later")
	}
	return writeJSON(w, http.StatusOK, map[string]string{"group": tr.Group, "from": string(tr.From), "to": string(tr.To), "reason": tr.Reason})
}
