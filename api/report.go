package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gravitational/teleport-update/internal/version"
)

// Size limits of a report.
const (
	// MaxReportSize is the largest report body accepted, in bytes.
	MaxReportSize = 64 << 10
	// MaxFieldLen is the longest accepted string field, in bytes.
	MaxFieldLen = 256
	// MaxListLen is the most entries accepted in services or install_methods.
	MaxListLen = 32
	// MaxErrorLen is the longest accepted UpdateResult.Error, in bytes.
	MaxErrorLen = 4 << 10
	// MaxRunSteps is the most entries accepted in UpdateResult.Steps.
	MaxRunSteps = 33
	// maxDepth is the deepest JSON nesting a valid report has (report →
	// last_update_result → steps → step).
	maxDepth = 4
)

// Updater status values (Report.UpdaterStatus).
const (
	StatusEnabled  = "enabled"  // the host follows its proxy
	StatusDisabled = "disabled" // automatic updates are turned off
	StatusPinned   = "pinned"   // the host stays on a version its admin chose
)

// Install methods (Report.InstallMethods). The first three come from
// TELEPORT_INSTALL_METHOD_* environment variables recorded at install time
// (RFD 108); systemctl means the agent's unit is active; teleport-update is
// this updater itself.
const (
	InstallMethodDockerfile     = "dockerfile"
	InstallMethodHelmKubeAgent  = "helm_kube_agent"
	InstallMethodNodeScript     = "node_script"
	InstallMethodSystemctl      = "systemctl"
	InstallMethodTeleportUpdate = "teleport-update"
)

// Container runtimes (Report.ContainerRuntime).
const (
	RuntimeDocker = "docker"
	RuntimePodman = "podman"
)

// Cloud environments (Report.CloudEnvironment).
const (
	CloudAWS   = "aws"
	CloudGCP   = "gcp"
	CloudAzure = "azure"
)

// OrchestratorKubernetesPrefix starts Report.ContainerOrchestrator when the
// agent runs in a Kubernetes pod: "kubernetes-v1.29.4-eks-036c24b".
const OrchestratorKubernetesPrefix = "kubernetes-"

// ErrInvalidReport is wrapped by every error that refuses a report body:
// malformed or non-strict JSON, oversized, a field out of its limits or
// outside its allowed values.
var ErrInvalidReport = errors.New("invalid census report")

// Report is what an agent POSTs to CensusPath. Field names follow RFD 108
// (AgentMetadataEvent) plus the updater's own state.
//
// Nothing in a report identifies a person or a host: host_id is a keyed hash
// of the machine id with a per-install random salt, and there is no hostname,
// IP address or user name anywhere.
type Report struct {
	// HostID is hex(HMAC-SHA256(salt, machine-id)) with a per-install random
	// salt: stable for one installation, never the raw machine id (see
	// HostID). Empty only when the updater has no salt; the proxy refuses
	// such reports.
	HostID string `json:"host_id"`
	// Version is the agent (teleport) version that is active, semver
	// without a leading "v"; empty before the first install.
	Version string `json:"version"`
	// Services are the Teleport services the agent runs (node, kube, app,
	// db, windows_desktop, ...), when known.
	Services []string `json:"services"`
	// OS is GOOS ("linux"), as in RFD 108.
	OS string `json:"os"`
	// OSVersion is the distribution and its version, /etc/os-release
	// NAME + " " + VERSION_ID ("Ubuntu 22.04"), as in RFD 108.
	OSVersion string `json:"os_version"`
	// HostArchitecture is GOARCH ("amd64", "arm64").
	HostArchitecture string `json:"host_architecture"`
	// GlibcVersion is "2.36"; empty on musl or when unknown.
	GlibcVersion string `json:"glibc_version"`
	// InstallMethods are sorted, distinct InstallMethod* values.
	InstallMethods []string `json:"install_methods"`
	// ContainerRuntime is "docker", "podman" or empty.
	ContainerRuntime string `json:"container_runtime"`
	// ContainerOrchestrator is "kubernetes-<git version>" or empty.
	ContainerOrchestrator string `json:"container_orchestrator"`
	// CloudEnvironment is "aws", "gcp", "azure" or empty.
	CloudEnvironment string `json:"cloud_environment"`
	// UpdateGroup is the group the host believes it is in. The proxy
	// replaces it with the group of the token the report came with.
	UpdateGroup string `json:"update_group"`
	// UpdaterStatus is one of StatusEnabled, StatusDisabled, StatusPinned.
	UpdaterStatus string `json:"updater_status"`
	// LastUpdateResult is the outcome of the last update attempt, nil when
	// the updater has not tried one yet.
	LastUpdateResult *UpdateResult `json:"last_update_result"`
	// ReportedAt is the agent's clock when it built the report. The proxy
	// keeps its own receive time for staleness.
	ReportedAt time.Time `json:"reported_at"`
	// UpdaterVersion is the version of the teleport-update in place (the
	// one the timer runs), semver without a leading "v". Optional: older
	// updaters do not send it.
	UpdaterVersion string `json:"updater_version,omitempty"`
	// SelfUpdateError is why the updater's last update of itself failed
	// ("<code>: <message>", one line of at most MaxErrorLen bytes); empty
	// when it worked or none was tried. Optional.
	SelfUpdateError string `json:"self_update_error,omitempty"`
	// UpdaterID is the updater's random id (ValidUpdaterID), the one it
	// sends in find requests: the proxy picks canaries among reporting
	// hosts and recognises them by it. Empty from older updaters.
	UpdaterID string `json:"updater_id,omitempty"`
}

// UpdateResult is the outcome of one update attempt.
type UpdateResult struct {
	Time    time.Time `json:"time"`
	Target  string    `json:"target"` // the version the updater tried to reach
	Success bool      `json:"success"`
	// ErrorCode names why a failed attempt failed, a short machine-readable
	// word such as "verification" or "health_check"; empty on success.
	ErrorCode string `json:"error_code"`
	// Error is the failure's message, one line of at most MaxErrorLen
	// bytes; empty on success. Optional.
	Error string `json:"error,omitempty"`
	// Steps is the run log: the steps the attempt went through, at most
	// MaxRunSteps. Optional.
	Steps []RunStep `json:"steps,omitempty"`
}

// RunStep is one step of an update attempt: its name (a short word such
// as "download" or "restart", or "failed" for the outcome of a failed
// attempt), how long it took since the previous step, and "ok" or the
// error code.
type RunStep struct {
	Name       string `json:"name"`
	DurationMS int64  `json:"duration_ms"`
	Result     string `json:"result"`
}

// reportFields and resultFields are the exact JSON keys allowed in a report
// and in its last_update_result. encoding/json matches keys without regard
// to case and keeps the last of duplicate keys; the strict pre-pass refuses
// both so what is stored is exactly what was sent.
var (
	reportFields = []string{
		"host_id", "version", "services", "os", "os_version", "host_architecture",
		"glibc_version", "install_methods", "container_runtime", "container_orchestrator",
		"cloud_environment", "update_group", "updater_status", "last_update_result", "reported_at",
		"updater_version", "self_update_error", "updater_id",
	}
	resultFields = []string{"time", "target", "success", "error_code", "error", "steps"}
	stepFields   = []string{"name", "duration_ms", "result"}
)

// DecodeReport parses and validates one report body.
//
// Outcomes: the report and nil; or an error wrapping ErrInvalidReport when the
// body is larger than MaxReportSize, is not UTF-8, is not exactly one JSON object, has an
// unknown, duplicate or wrongly cased key, a value of the wrong type, or a
// field outside its limits (see Report.Validate).
func DecodeReport(body []byte) (Report, error) {
	if len(body) > MaxReportSize {
		return Report{}, fmt.Errorf("%w: body is %d bytes, more than the %d byte limit", ErrInvalidReport, len(body), MaxReportSize)
	}
	if !utf8.Valid(body) {
		return Report{}, fmt.Errorf("%w: body is not valid UTF-8", ErrInvalidReport)
	}
	if err := checkKeys(body); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrInvalidReport, err)
	}
	// checkKeys has admitted only known fields, so plain Unmarshal is strict.
	var r Report
	if err := json.Unmarshal(body, &r); err != nil {
		return Report{}, fmt.Errorf("%w: decode JSON: %v", ErrInvalidReport, err)
	}
	if err := r.Validate(); err != nil {
		return Report{}, err
	}
	return r, nil
}

// checkKeys scans body and refuses anything that is not a single object
// whose keys (and those of last_update_result) are known, exactly cased,
// unescaped and not repeated, nested no deeper than a valid report, in one
// pass over the bytes. It trusts json.Unmarshal, which runs next, to refuse
// bad syntax; on malformed input it may only refuse more, never less.
func checkKeys(body []byte) error {
	type frame struct {
		object    bool
		key       string // the field this value is under ("" at the top)
		fields    []string
		seen      uint32 // bit i: fields[i] seen
		expectKey bool
		lastKey   int // index in fields of the key whose value comes next
	}
	var stack [maxDepth]frame
	depth := 0
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return errors.New("body is not a JSON object")
	}
	for ; i < len(body); i++ {
		switch c := body[i]; c {
		case '"':
			end := i + 1
			escaped := false
			for ; end < len(body) && body[end] != '"'; end++ {
				if body[end] == '\\' {
					escaped = true
					end++
				}
			}
			if end >= len(body) {
				return errors.New("unterminated string")
			}
			if top := &stack[depth-1]; top.object && top.expectKey {
				key := body[i+1 : end]
				if escaped {
					return fmt.Errorf("escaped field name %q", truncate(string(key)))
				}
				k := slices.Index(top.fields, string(key))
				if k < 0 {
					return fmt.Errorf("unknown field %q", truncate(string(key)))
				}
				if top.seen&(1<<k) != 0 {
					return fmt.Errorf("duplicate field %q", key)
				}
				top.seen |= 1 << k
				top.expectKey = false
				top.lastKey = k
			}
			i = end
		case '{', '[':
			if depth == maxDepth {
				return errors.New("nested too deeply")
			}
			f := frame{object: c == '{', expectKey: c == '{'}
			if depth > 0 {
				if top := stack[depth-1]; top.object {
					f.key = top.fields[top.lastKey]
				} else {
					f.key = top.key + "[]"
				}
			}
			if f.object {
				switch f.key {
				case "":
					f.fields = reportFields
				case "last_update_result":
					f.fields = resultFields
				case "steps[]":
					f.fields = stepFields
				default:
					return errors.New("unexpected object")
				}
			}
			stack[depth] = f
			depth++
		case '}', ']':
			if depth == 0 {
				return errors.New("unbalanced brackets")
			}
			depth--
			if depth == 0 {
				if skipSpace(body, i+1) != len(body) {
					return errors.New("trailing data after the JSON object")
				}
				return nil
			}
		case ',':
			if depth > 0 && stack[depth-1].object {
				stack[depth-1].expectKey = true
			}
		}
	}
	return errors.New("unterminated object")
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

var (
	glibcPattern   = regexp.MustCompile(`^[0-9]{1,3}\.[0-9]{1,4}(\.[0-9]{1,4})?$`)
	k8sPattern     = regexp.MustCompile(`^kubernetes-[A-Za-z0-9][A-Za-z0-9.+_-]{0,127}$`)
	installMethods = []string{InstallMethodDockerfile, InstallMethodHelmKubeAgent, InstallMethodNodeScript, InstallMethodSystemctl, InstallMethodTeleportUpdate}
	statuses       = []string{StatusEnabled, StatusDisabled, StatusPinned}
	runtimes       = []string{RuntimeDocker, RuntimePodman}
	clouds         = []string{CloudAWS, CloudGCP, CloudAzure}
)

// Validate checks every field against its limits and allowed values and
// returns an error wrapping ErrInvalidReport naming the first bad field.
// HostID may be empty here; the store refuses reports without one.
func (r *Report) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidReport, field, fmt.Sprintf(format, args...))
	}
	if r.HostID != "" && !ValidHostID(r.HostID) {
		return bad("host_id", "want 64 lowercase hex digits")
	}
	if r.UpdaterID != "" && !ValidUpdaterID(r.UpdaterID) {
		return bad("updater_id", "want a lowercase UUID")
	}
	if err := checkVersion(r.Version, true); err != nil {
		return bad("version", "%v", err)
	}
	if err := checkList(r.Services, nil); err != nil {
		return bad("services", "%v", err)
	}
	if r.OS != "" && !ValidWord(r.OS) {
		return bad("os", "want a GOOS-like word")
	}
	if err := checkText(r.OSVersion); err != nil {
		return bad("os_version", "%v", err)
	}
	if r.HostArchitecture != "" && !ValidWord(r.HostArchitecture) {
		return bad("host_architecture", "want a GOARCH-like word")
	}
	if r.GlibcVersion != "" && !glibcPattern.MatchString(r.GlibcVersion) {
		return bad("glibc_version", "want a version like 2.36")
	}
	if err := checkList(r.InstallMethods, installMethods); err != nil {
		return bad("install_methods", "%v", err)
	}
	if r.ContainerRuntime != "" && !slices.Contains(runtimes, r.ContainerRuntime) {
		return bad("container_runtime", "want one of %v or empty", runtimes)
	}
	if r.ContainerOrchestrator != "" && !k8sPattern.MatchString(r.ContainerOrchestrator) {
		return bad("container_orchestrator", "want kubernetes-<version> or empty")
	}
	if r.CloudEnvironment != "" && !slices.Contains(clouds, r.CloudEnvironment) {
		return bad("cloud_environment", "want one of %v or empty", clouds)
	}
	if err := checkText(r.UpdateGroup); err != nil {
		return bad("update_group", "%v", err)
	}
	if !slices.Contains(statuses, r.UpdaterStatus) {
		return bad("updater_status", "want one of %v", statuses)
	}
	if u := r.LastUpdateResult; u != nil {
		if u.Time.IsZero() {
			return bad("last_update_result.time", "missing")
		}
		if err := checkVersion(u.Target, false); err != nil {
			return bad("last_update_result.target", "%v", err)
		}
		if u.Success && u.ErrorCode != "" {
			return bad("last_update_result.error_code", "set on a successful update")
		}
		if u.ErrorCode != "" && !ValidErrorCode(u.ErrorCode) {
			return bad("last_update_result.error_code", "want a short lowercase word")
		}
		if err := checkRun(u); err != nil {
			return bad("last_update_result", "%v", err)
		}
	}
	if r.ReportedAt.IsZero() {
		return bad("reported_at", "missing")
	}
	return r.validateUpdater()
}

// validateUpdater checks what a report says about the updater itself.
func (r *Report) validateUpdater() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidReport, field, fmt.Sprintf(format, args...))
	}
	if err := checkVersion(r.UpdaterVersion, true); err != nil {
		return bad("updater_version", "%v", err)
	}
	if len(r.SelfUpdateError) > MaxErrorLen {
		return bad("self_update_error", "%d bytes, more than %d", len(r.SelfUpdateError), MaxErrorLen)
	}
	if err := checkLine(r.SelfUpdateError); err != nil {
		return bad("self_update_error", "%v", err)
	}
	return nil
}

// The predicates below are the rules Validate applies to single values, for
// an agent that builds a report to drop what the proxy would refuse.

// ValidHostID reports whether s is a Report.HostID: 64 lowercase hex
// digits.
func ValidHostID(s string) bool { return len(s) == 64 && allOf(s, isHexDigit) }

// ValidUpdaterID reports whether s is an updater id: a lowercase UUID, as
// Teleport's updater_uuid.
func ValidUpdaterID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if dash := i == 8 || i == 13 || i == 18 || i == 23; dash != (s[i] == '-') || !dash && !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

// ValidWord reports whether s is a lowercase word as Report.OS and each of
// Report.Services must be: a-z, 0-9 and _, at most 32 bytes.
func ValidWord(s string) bool { return lowerWord(s, 32, "_") }

// ValidInstallMethod reports whether m is one of the InstallMethod* values.
func ValidInstallMethod(m string) bool { return slices.Contains(installMethods, m) }

// ValidOrchestrator reports whether s is a Report.ContainerOrchestrator:
// OrchestratorKubernetesPrefix and a version of at most 128 bytes.
func ValidOrchestrator(s string) bool { return k8sPattern.MatchString(s) }

// ValidErrorCode reports whether s is an UpdateResult.ErrorCode: a short
// lowercase word.
func ValidErrorCode(s string) bool { return lowerWord(s, 64, "_.-") }

// ValidVersion reports whether v is a Report.Version: semver without a
// leading "v", as version.Parse accepts it, or empty.
func ValidVersion(v string) bool { return checkVersion(v, true) == nil }

// ValidErrorLine reports whether s is a Report.SelfUpdateError: one line
// of at most MaxErrorLen bytes.
func ValidErrorLine(s string) bool { return len(s) <= MaxErrorLen && checkLine(s) == nil }

// checkVersion accepts what version.Parse accepts (and empty when emptyOK).
func checkVersion(v string, emptyOK bool) error {
	if v == "" {
		if emptyOK {
			return nil
		}
		return errors.New("missing")
	}
	_, err := version.Parse(v)
	return err
}

// checkRun checks a result's error message and run log.
func checkRun(u *UpdateResult) error {
	if len(u.Error) > MaxErrorLen {
		return fmt.Errorf("error: %d bytes, more than %d", len(u.Error), MaxErrorLen)
	}
	if err := checkLine(u.Error); err != nil {
		return fmt.Errorf("error: %v", err)
	}
	if len(u.Steps) > MaxRunSteps {
		return fmt.Errorf("steps: %d entries, more than %d", len(u.Steps), MaxRunSteps)
	}
	for i, st := range u.Steps {
		if !ValidErrorCode(st.Name) || !ValidErrorCode(st.Result) || st.DurationMS < 0 {
			return fmt.Errorf("steps[%d]: want a short lowercase name and result and a duration not negative", i)
		}
	}
	return nil
}

// checkList checks a list of distinct words, each in allowed when allowed is
// not nil.
func checkList(list, allowed []string) error {
	if len(list) > MaxListLen {
		return fmt.Errorf("%d entries, more than %d", len(list), MaxListLen)
	}
	for i, s := range list {
		if allowed != nil && !slices.Contains(allowed, s) {
			return fmt.Errorf("%q is not one of %v", truncate(s), allowed)
		}
		if allowed == nil && !ValidWord(s) {
			return fmt.Errorf("%q is not a lowercase word", truncate(s))
		}
		if slices.Contains(list[:i], s) {
			return fmt.Errorf("%q listed twice", s)
		}
	}
	return nil
}

// checkText accepts short printable UTF-8 without control characters.
func checkText(s string) error {
	if len(s) > MaxFieldLen {
		return fmt.Errorf("%d bytes, more than %d", len(s), MaxFieldLen)
	}
	return checkLine(s)
}

// checkLine accepts printable UTF-8 without control characters.
func checkLine(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("contains the non-printable character %U", c)
		}
	}
	return nil
}

// truncate shortens untrusted text quoted in an error.
func truncate(s string) string {
	const maxQuoted = 40
	if len(s) <= maxQuoted {
		return s
	}
	return strings.ToValidUTF8(s[:maxQuoted], "") + "…"
}

// The checks below run on every census report the proxy takes, so they
// are written out instead of going through package regexp, which cost
// several microseconds a report. The tests check them against the
// regular expressions they replace.

// lowerWord reports whether s is 1 to max bytes: a lowercase letter or a
// digit, then lowercase letters, digits and the bytes of extra.
func lowerWord(s string, max int, extra string) bool {
	if len(s) == 0 || len(s) > max || !isLowerAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isLowerAlnum(s[i]) && strings.IndexByte(extra, s[i]) < 0 {
			return false
		}
	}
	return true
}

// allOf reports whether every byte of s satisfies ok.
func allOf(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isHexDigit(c byte) bool { return 'a' <= c && c <= 'f' || '0' <= c && c <= '9' }
