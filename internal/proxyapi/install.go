package proxyapi

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/gravitational/teleport-update/internal/endpoint"
)

// installScriptData are the fields of the install.sh template. Each value
// is placed by the template inside single quotes; quoteInside makes that
// safe for any value (they are validated to a safe charset anyway).
type installScriptData struct {
	ProxyAddr string
	Group     string
	Version   string
	BaseURL   string
	PublicKey string
}

// quoteInside escapes s for use between single quotes in a shell script:
// each single quote becomes quote, backslash, quote, quote (close the
// quoted string, an escaped quote, reopen).
func quoteInside(s string) string {
	return strings.ReplaceAll(s, "'", `'\''`)
}

// serveInstallScript renders install.sh for the requested group. A group
// that is not in the policy is refused (400) rather than silently given the
// default group: the installer is run by a person who made a typo. An empty
// group leaves the choice to the script (the proxy then answers find with
// the default group).
func (s *Server) serveInstallScript(w http.ResponseWriter, r *http.Request) int {
	if code, ok := allowMethods(w, r, http.MethodGet, http.MethodHead); !ok {
		return code
	}
	if s.script == nil {
		return writeError(w, http.StatusNotFound, "this proxy does not serve an install script")
	}
	q, err := ParseFindQuery(r.URL.RawQuery)
	if err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	p := s.Policy()
	if q.Group != "" && !p.HasGroup(q.Group) {
		names := make([]string, len(p.Groups))
		for i, g := range p.Groups {
			names[i] = g.Name
		}
		return writeError(w, http.StatusBadRequest, "group "+q.Group+" is not in the policy; known groups: "+strings.Join(names, ", "))
	}
	addr := s.cfg.PublicAddr
	if addr == "" {
		addr = r.Host
		if err := endpoint.ValidateHostPort(addr); err != nil {
			return writeError(w, http.StatusBadRequest, "request Host is not usable as the proxy address: "+err.Error())
		}
	}
	data := installScriptData{
		ProxyAddr: quoteInside(addr),
		Group:     quoteInside(q.Group),
		Version:   quoteInside(p.TargetVersion.String()),
		BaseURL:   quoteInside(s.cfg.BaseURL),
		PublicKey: quoteInside(strings.TrimSpace(string(s.cfg.InstallPublicKeyPEM))),
	}
	var buf bytes.Buffer
	if err := s.script.Execute(&buf, data); err != nil {
		s.logger.Error("Install script template failed.", "error", err.Error())
		return writeError(w, http.StatusInternalServerError, "render install script failed")
	}
	h := w.Header()
	h.Set("Content-Type", "text/x-shellscript; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return http.StatusOK
}
