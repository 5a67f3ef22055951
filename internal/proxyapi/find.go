package proxyapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gravitational/teleport-update/api"
)

// ErrInvalidQuery is wrapped by every query parameter error (answered 400).
var ErrInvalidQuery = errors.New("invalid query")

// FindQuery is the validated query of the find and install.sh endpoints.
type FindQuery struct {
	// Group is the requested update group; empty means the default.
	Group string
	// Host is an older name for the agent's identity; it is validated and
	// otherwise unused.
	Host string
	// UpdaterID is the updater's random id: a group's canaries are
	// recognised by it (empty: not a canary).
	UpdaterID string
}

// ParseFindQuery validates a raw query string: at most one group and one
// host, each at most MaxNameLen characters of A-Z a-z 0-9 . _ -, empty
// allowed. Other parameters are ignored (clients may add their own). It
// returns an error wrapping ErrInvalidQuery naming the parameter.
func ParseFindQuery(rawQuery string) (FindQuery, error) {
	var q FindQuery
	if len(rawQuery) > maxQueryLen {
		return q, fmt.Errorf("%w: the query is longer than %d bytes", ErrInvalidQuery, maxQueryLen)
	}
	var sawGroup, sawHost, sawUpdater bool
	for rest := rawQuery; rest != ""; {
		var kv string
		kv, rest, _ = strings.Cut(rest, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		var dst *string
		var saw *bool
		switch k {
		case api.FindQueryGroup:
			dst, saw = &q.Group, &sawGroup
		case api.FindQueryHost:
			dst, saw = &q.Host, &sawHost
		case api.FindQueryUpdaterID:
			dst, saw = &q.UpdaterID, &sawUpdater
		default:
			continue
		}
		if *saw {
			return FindQuery{}, fmt.Errorf("%w: parameter %s is given more than once", ErrInvalidQuery, k)
		}
		*saw = true
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return FindQuery{}, fmt.Errorf("%w: parameter %s is not URL-encoded correctly", ErrInvalidQuery, k)
			}
			v = u
		}
		if v == "" {
			continue
		}
		if err := checkName(v); err != nil {
			return FindQuery{}, fmt.Errorf("%w: parameter %s %v", ErrInvalidQuery, k, err)
		}
		*dst = v
	}
	return q, nil
}

// serveFind answers GET /v1/webapi/find from the answer cached for the
// group, recomputing it only when the group's window opens or closes.
func (s *Server) serveFind(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		code, _ := allowMethods(w, r, http.MethodGet, http.MethodHead)
		return code
	}
	q, err := ParseFindQuery(r.URL.RawQuery)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	st := s.state.Load()
	g, ok := st.groups[q.Group]
	if !ok {
		g = st.def
	}
	now := s.now()
	body := g.bodyOf(s.answerKind(st.policy, g, q.UpdaterID), now)
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Cache-Control"] = cacheNoStore
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return http.StatusOK
}

// Shared header values (never modified).
var (
	contentTypeJSON = []string{"application/json"}
	cacheNoStore    = []string{"no-store"}
)

// body returns the JSON answer serving the target at now.
func (g *groupAnswer) body(now time.Time) []byte { return g.bodyOf(answerTarget, now) }

// bodyOf returns the JSON answer of kind k at now, from the cache while it
// is valid.
func (g *groupAnswer) bodyOf(k answerKind, now time.Time) []byte {
	cached := &g.cached[k]
	if a := cached.Load(); a != nil && !now.Before(a.from) && (a.until.IsZero() || now.Before(a.until)) {
		return a.body
	}
	settings, until := g.policy.Settings(g.group, now)
	if k != answerTarget {
		// The start version: held where they are (hold), or moving back
		// to it inside the window (rolled back).
		settings.AgentVersion = g.policy.StartVersion.String()
		if k != answerStartBack {
			settings.AgentAutoUpdate = false
		}
		settings.AgentUpdateHold = holdReason(k, g.group.Name, g.policy.TargetVersion.String())
	}
	body, err := json.Marshal(api.FindResponse{AutoUpdate: settings, Edition: g.edition, FIPS: g.fips})
	if err != nil {
		// Only plain strings, ints, bools and times: cannot fail.
		panic(fmt.Sprintf("encode find response: %v", err))
	}
	body = append(body, '\n')
	cached.Store(&answer{body: body, from: now, until: until})
	return body
}
