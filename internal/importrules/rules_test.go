package importrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// module is the module path; patterns below without a dot in their first
// element are relative to it.
const module = "github.com/gravitational/teleport-update"

// Groups of packages the rules name. A pattern "x/..." is x and every
// package under it; any other pattern is one package.
var (
	agent = []string{"internal/updater/...", "internal/census", "api"}
	proxy = []string{"internal/proxyapi/...", "internal/census/store/..."}
	// serverOnly is what only the proxy (or the CLI) may link.
	serverOnly = []string{
		"internal/proxyapi/...", "internal/census/store/...", "cmd/...",
		"github.com/prometheus/...", "modernc.org/sqlite/...", "github.com/robfig/cron/...",
		"github.com/jackc/pgx/...", "internal/pgtest",
	}
)

// rules are the import rules of the module.
var rules = []rule{
	{
		name:  "verification is a leaf: it imports nothing of the module but safeperm",
		from:  []string{"internal/updater/verify"},
		leaf:  true,
		allow: []string{"internal/safeperm"},
	},
	{
		name: "the window math is a leaf: it imports nothing of the module",
		from: []string{"internal/proxyapi/schedule"},
		leaf: true,
	},
	{
		name:  "the wire package imports neither side, only the version parser",
		from:  []string{"api"},
		leaf:  true,
		allow: []string{"internal/version"},
	},
	{
		name: "no agent package links the proxy's server code or Prometheus",
		from: agent,
		deny: serverOnly,
	},
	{
		name: "the proxy does not link the agent",
		from: proxy,
		deny: []string{"internal/updater/...", "internal/census"},
	},
	{
		name: "only the package builder links the packaging library",
		from: []string{"api", "internal/updater/...", "internal/census/...", "internal/proxyapi/...", "cmd/..."},
		deny: []string{"internal/packaging", "github.com/goreleaser/..."},
	},
	{
		name:   "nothing imports the CLI",
		from:   []string{"..."},
		deny:   []string{"cmd/..."},
		direct: true,
	},
}

// rule says what the packages matching from may depend on.
type rule struct {
	name string
	from []string
	// deny lists the packages the from packages must not depend on.
	deny []string
	// leaf says the from packages depend on no package of the module but
	// those in allow; the standard library and other modules stay allowed.
	leaf  bool
	allow []string
	// direct checks the direct imports, tests' included, rather than the
	// transitive dependencies of the package itself.
	direct bool
}

// pkg is what `go list -json` says of a package.
type pkg struct {
	ImportPath   string
	Standard     bool
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
}

// matches reports whether path matches pattern.
func matches(pattern, path string) bool {
	if pattern == "..." {
		return path == module || strings.HasPrefix(path, module+"/")
	}
	if first, _, _ := strings.Cut(pattern, "/"); !strings.Contains(first, ".") {
		pattern = module + "/" + pattern
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchesAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(p, path) })
}

func inModule(path string) bool { return matches("...", path) }

// check returns one line per broken rule: the package, what it must not
// depend on, and the chain of imports that brings it in. A from pattern
// that matches no package is reported too, so that a moved package cannot
// silently escape its rule.
func check(pkgs map[string]*pkg, rules []rule) []string {
	var bad []string
	paths := sortedKeys(pkgs)
	for _, r := range rules {
		for _, pat := range r.from {
			if !slices.ContainsFunc(paths, func(p string) bool { return inModule(p) && matches(pat, p) }) {
				bad = append(bad, r.name+": no package matches "+pat)
			}
		}
		for _, path := range paths {
			if inModule(path) && matchesAny(r.from, path) {
				bad = append(bad, r.violations(pkgs, pkgs[path])...)
			}
		}
	}
	return bad
}

// violations lists what p breaks of r.
func (r rule) violations(pkgs map[string]*pkg, p *pkg) []string {
	deps := p.Deps
	if r.direct {
		deps = slices.Concat(p.Imports, p.TestImports, p.XTestImports)
	}
	var bad []string
	for _, d := range deps {
		if d == p.ImportPath || !r.forbids(d) {
			continue
		}
		chain := importChain(pkgs, p.ImportPath, d, r.direct)
		// Only the first forbidden package on the way is reported: what
		// it brings in goes with it.
		if slices.ContainsFunc(chain[1:len(chain)-1], r.forbids) {
			continue
		}
		bad = append(bad, r.name+": "+strings.Join(chain, " → "))
	}
	return bad
}

// forbids reports whether r forbids depending on path.
func (r rule) forbids(path string) bool {
	return matchesAny(r.deny, path) || r.leaf && inModule(path) && !matchesAny(r.allow, path)
}

// importChain returns a shortest chain of imports from from to to.
func importChain(pkgs map[string]*pkg, from, to string, direct bool) []string {
	if direct {
		return []string{from, to}
	}
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			chain := []string{}
			for p := to; p != ""; p = prev[p] {
				chain = append([]string{p}, chain...)
			}
			return chain
		}
		if p, ok := pkgs[cur]; ok {
			for _, next := range p.Imports {
				if _, seen := prev[next]; !seen {
					prev[next] = cur
					queue = append(queue, next)
				}
			}
		}
	}
	return []string{from, "…", to}
}

func sortedKeys(m map[string]*pkg) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// listPackages runs `go list -deps -json ./...` at the module root.
func listPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "list", "-e", "-deps", "-json", "./...")
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs[p.ImportPath] = &p
	}
	if _, ok := pkgs[module+"/internal/updater"]; !ok {
		t.Fatalf("go list did not list %s/internal/updater; run from the wrong directory?", module)
	}
	return pkgs
}

// TestImportRules enforces the rules on the module as it is.
func TestImportRules(t *testing.T) {
	t.Parallel()
	for _, line := range check(listPackages(t), rules) {
		t.Error(line)
	}
}

func TestMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"internal/census", module + "/internal/census", true},
		{"internal/census", module + "/internal/census/store", false},
		{"internal/census/store/...", module + "/internal/census/store", true},
		{"internal/updater/...", module + "/internal/updater", true},
		{"internal/updater/...", module + "/internal/updater/verify", true},
		{"internal/updater/...", module + "/internal/updaterx", false},
		{"...", module + "/cmd/teleport-update", true},
		{"...", "github.com/gravitational/teleport-updater", false},
		{"github.com/prometheus/...", "github.com/prometheus/client_golang/prometheus", true},
		{"github.com/prometheus/...", module + "/github.com/prometheus/x", false},
		{"api", "api", false},
	}
	for _, tt := range tests {
		if got := matches(tt.pattern, tt.path); got != tt.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

// TestCheckFindsViolations feeds check graphs that break each rule.
func TestCheckFindsViolations(t *testing.T) {
	t.Parallel()
	m := func(rel string) string { return module + "/" + rel }
	// graph builds packages from "a: b c" lines; Deps are computed.
	graph := func(lines ...string) map[string]*pkg {
		pkgs := map[string]*pkg{}
		for _, l := range lines {
			name, imports, _ := strings.Cut(l, ":")
			p := &pkg{ImportPath: name}
			for _, i := range strings.Fields(imports) {
				if strings.HasPrefix(i, "test=") {
					p.TestImports = append(p.TestImports, strings.TrimPrefix(i, "test="))
					continue
				}
				p.Imports = append(p.Imports, i)
			}
			pkgs[name] = p
		}
		for _, p := range pkgs {
			seen := map[string]bool{}
			var walk func(string)
			walk = func(n string) {
				for _, i := range pkgs[n].Imports {
					if !seen[i] {
						seen[i] = true
						if _, ok := pkgs[i]; ok {
							walk(i)
						}
					}
				}
			}
			walk(p.ImportPath)
			for d := range seen {
				p.Deps = append(p.Deps, d)
			}
			slices.Sort(p.Deps)
		}
		return pkgs
	}
	base := []string{
		m("api") + ": encoding/json",
		m("internal/updater") + ": " + m("api") + " " + m("internal/updater/verify"),
		m("internal/updater/verify") + ": " + m("internal/safeperm"),
		m("internal/safeperm") + ": os",
		m("internal/census") + ": " + m("api"),
		m("internal/census/store") + ": " + m("api"),
		m("internal/proxyapi") + ": " + m("api") + " " + m("internal/census/store") + " " + m("internal/proxyapi/schedule") + " github.com/prometheus/client_golang/prometheus",
		m("internal/proxyapi/schedule") + ": github.com/robfig/cron/v3",
		m("cmd/teleport-update") + ": " + m("internal/proxyapi") + " " + m("internal/updater") + " " + m("internal/census"),
		"github.com/prometheus/client_golang/prometheus:",
		"github.com/robfig/cron/v3:",
		"encoding/json:", "os:",
	}
	if bad := check(graph(base...), rules); len(bad) != 0 {
		t.Fatalf("the allowed graph breaks rules:\n%s", strings.Join(bad, "\n"))
	}
	tests := []struct {
		name string
		edit string // a line replacing the package's line in base
		want string // in the report
	}{
		{"agent imports the proxy", m("internal/updater") + ": " + m("api") + " " + m("internal/proxyapi"),
			"no agent package links the proxy's server code or Prometheus: " + m("internal/updater") + " → " + m("internal/proxyapi")},
		{"agent links Prometheus through another package", m("internal/census") + ": " + m("api") + " " + m("internal/metrics"),
			m("internal/census") + " → " + m("internal/metrics") + " → github.com/prometheus/client_golang/prometheus"},
		{"verify imports another package of the module", m("internal/updater/verify") + ": " + m("internal/safeperm") + " " + m("internal/fixture"),
			"verification is a leaf"},
		{"schedule imports the policy", m("internal/proxyapi/schedule") + ": " + m("api"),
			"the window math is a leaf: it imports nothing of the module: " + m("internal/proxyapi/schedule") + " → " + m("api")},
		{"api imports the census", m("api") + ": " + m("internal/census"), "the wire package imports neither side"},
		{"the proxy links the agent", m("internal/census/store") + ": " + m("api") + " " + m("internal/census"), "the proxy does not link the agent"},
		{"a test imports the CLI", m("internal/census") + ": " + m("api") + " test=" + m("cmd/teleport-update"), "nothing imports the CLI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name, _, _ := strings.Cut(tt.edit, ":")
			lines := slices.Clone(base)
			for i, l := range lines {
				if strings.HasPrefix(l, name+":") {
					lines[i] = tt.edit
				}
			}
			lines = append(lines, m("internal/metrics")+": github.com/prometheus/client_golang/prometheus", m("internal/fixture")+":")
			bad := check(graph(lines...), rules)
			if !slices.ContainsFunc(bad, func(l string) bool { return strings.Contains(l, tt.want) }) {
				t.Errorf("check = %q; want a line containing %q", bad, tt.want)
			}
		})
	}
	// A rule whose package is gone is reported, not skipped.
	var noVerify []string
	for _, l := range base {
		if !strings.HasPrefix(l, m("internal/updater/verify")+":") {
			noVerify = append(noVerify, l)
		}
	}
	if bad := check(graph(noVerify...), rules); !slices.ContainsFunc(bad, func(l string) bool { return strings.Contains(l, "no package matches internal/updater/verify") }) {
		t.Errorf("check without internal/updater/verify = %q; want the rule reported", bad)
	}
}
