// Package census is the agent side of the census: it collects what an agent
// reports about itself to its proxy (Teleport RFD 108 "Agent Census" plus the
// updater's state) from the host's files and, when allowed, cloud metadata
// and Kubernetes probes, and sends the report. The report's shape and the
// proxy's strict decoder are in package api.
//
// Nothing collected identifies a person or a host: host_id is a keyed hash
// of the machine id with a per-install random salt (HostID), and no
// hostname, IP address or user name is read into a report.
package census

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gravitational/teleport-update/api"
	"github.com/gravitational/teleport-update/internal/termtext"
)

// Limits of the collection probes.
const (
	// ProbeTimeout is the budget of each network probe (the in-cluster
	// Kubernetes API, each cloud metadata endpoint).
	ProbeTimeout = time.Second
	// maxSmallFile caps text files read from the host (os-release, DMI
	// values, machine-id, the service-account token).
	maxSmallFile = 64 << 10
)

// UpdaterState is what the updater knows about itself that goes into a
// report.
type UpdaterState struct {
	Group         string // update group from update.yaml
	ActiveVersion string // status.active, semver without "v"
	Pinned        bool
	Disabled      bool
	// InstallMethods recorded in update.yaml at install time (see
	// InstallMethodsFromEnv); unknown values are dropped.
	InstallMethods []string
	// Services the agent runs (node, kube, app, db, windows_desktop), when
	// the caller knows them; invalid entries are dropped. Nil reads them
	// from etc/teleport.yaml (see ServicesFromConfig).
	Services   []string
	LastUpdate *api.UpdateResult
	// SystemdUnitActive says the agent's unit (teleport.service) is active;
	// with etc/systemd/system/teleport.service present it adds the
	// systemctl install method. The caller asks systemd (over D-Bus).
	SystemdUnitActive bool
	// Salt is the per-install random key of host_id (see NewSalt and
	// HostID); with a salt shorter than MinSaltSize host_id stays empty.
	Salt []byte
	// UpdaterVersion is the teleport-update in place; SelfUpdateError why
	// its last update of itself failed, "" when it did not.
	UpdaterVersion, SelfUpdateError string
	// UpdaterID is the updater's random id from update.yaml, sent as is
	// when valid (the proxy recognises canaries by it).
	UpdaterID string
}

// Options tune Collect.
type Options struct {
	// AllowMetadataProbes lets Collect ask the AWS, GCP and Azure metadata
	// endpoints (1 s each, in parallel) when local DMI data names no cloud.
	// Off by default: no network probe leaves the host unless allowed.
	AllowMetadataProbes bool
	// HTTPClient talks to the in-cluster Kubernetes API. Nil builds one
	// that trusts only the service account's ca.crt.
	HTTPClient *http.Client
	// Getenv reads the environment (KUBERNETES_SERVICE_HOST and
	// KUBERNETES_SERVICE_PORT); nil means os.Getenv.
	Getenv func(string) string
	// Logger receives debug lines about probes that found nothing; nil
	// discards them.
	Logger *slog.Logger
	// Now stamps ReportedAt; nil means time.Now.
	Now func() time.Time

	// metadata overrides the cloud metadata endpoints in tests.
	metadata *metadataEndpoints
}

// Collect builds this host's report from the files under root ("/" in
// production), the updater's state and, when opts allow, network probes.
//
// It never fails: a probe that cannot read its file or reach its endpoint
// leaves its field empty. Network probes each have ProbeTimeout, so Collect
// returns within a few seconds even when every endpoint hangs; ctx can cut
// that shorter.
func Collect(ctx context.Context, root string, st UpdaterState, opts Options) api.Report {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	fsys := openHostFS(root)
	defer fsys.Close()

	osName, osVersion := probeOSRelease(fsys)
	r := api.Report{
		HostID:           HostID(readMachineID(fsys), st.Salt),
		Version:          cleanVersion(st.ActiveVersion),
		Services:         cleanList(st.Services, api.ValidWord),
		OS:               runtime.GOOS,
		OSVersion:        cleanText(strings.TrimSpace(osName + " " + osVersion)),
		HostArchitecture: runtime.GOARCH,
		GlibcVersion:     probeGlibc(fsys),
		ContainerRuntime: probeContainerRuntime(fsys),
		CloudEnvironment: probeDMICloud(fsys),
		UpdateGroup:      cleanText(st.Group),
		UpdaterStatus:    updaterStatus(st),
		LastUpdateResult: cleanResult(st.LastUpdate),
		ReportedAt:       now().UTC().Truncate(time.Millisecond),
	}
	if api.ValidUpdaterID(st.UpdaterID) {
		r.UpdaterID = st.UpdaterID
	}
	r.InstallMethods = installMethodsOf(fsys, st)
	r.UpdaterVersion = cleanVersion(st.UpdaterVersion)
	if api.ValidErrorLine(st.SelfUpdateError) {
		r.SelfUpdateError = st.SelfUpdateError
	}
	if st.Services == nil {
		r.Services = cleanList(probeServices(fsys), api.ValidWord)
	}
	r.ContainerOrchestrator = probeKubernetes(ctx, fsys, getenv, opts.HTTPClient, logger)
	if r.CloudEnvironment == "" && opts.AllowMetadataProbes {
		r.CloudEnvironment = probeMetadata(ctx, opts.metadata, logger)
	}
	if r.HostID == "" {
		logger.DebugContext(ctx, "Census host id left empty: no salt; the proxy will refuse the report.")
	}
	return r
}

// updaterStatus maps the updater's switches to Report.UpdaterStatus;
// disabled wins over pinned.
func updaterStatus(st UpdaterState) string {
	switch {
	case st.Disabled:
		return api.StatusDisabled
	case st.Pinned:
		return api.StatusPinned
	}
	return api.StatusEnabled
}

// installMethodsOf lists the recorded methods, systemctl when the agent's
// unit is installed and active, and teleport-update itself.
func installMethodsOf(fsys *hostFS, st UpdaterState) []string {
	methods := slices.Clone(st.InstallMethods)
	methods = append(methods, api.InstallMethodTeleportUpdate)
	if st.SystemdUnitActive && fsys.exists("etc/systemd/system/teleport.service") {
		methods = append(methods, api.InstallMethodSystemctl)
	}
	return cleanList(methods, api.ValidInstallMethod)
}

// InstallMethodsFromEnv returns the install methods named by
// TELEPORT_INSTALL_METHOD_{DOCKERFILE,HELM_KUBE_AGENT,NODE_SCRIPT}=true in
// environ (os.Environ() form), sorted. The updater records them at install
// time, because an `export` in an install script does not survive a
// restart. A value counts when it is a true word ("true", "1", "yes", "on",
// any case).
func InstallMethodsFromEnv(environ []string) []string {
	vars := map[string]string{
		"TELEPORT_INSTALL_METHOD_DOCKERFILE":      api.InstallMethodDockerfile,
		"TELEPORT_INSTALL_METHOD_HELM_KUBE_AGENT": api.InstallMethodHelmKubeAgent,
		"TELEPORT_INSTALL_METHOD_NODE_SCRIPT":     api.InstallMethodNodeScript,
	}
	var out []string
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		m, known := vars[k]
		if !ok || !known {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1", "yes", "on":
			out = append(out, m)
		}
	}
	return cleanList(out, api.ValidInstallMethod)
}

// cleanList sorts list, drops duplicates and entries a report would refuse
// (those valid rejects), and caps it at api.MaxListLen. It returns an empty,
// non-nil list for none (JSON []).
func cleanList(list []string, valid func(string) bool) []string {
	out := []string{}
	for _, s := range list {
		if valid(s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > api.MaxListLen {
		out = out[:api.MaxListLen]
	}
	return out
}

// cleanText drops non-printable characters and caps s at api.MaxFieldLen bytes
// on a character boundary, so a report always passes Validate.
func cleanText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	for len(s) > api.MaxFieldLen {
		_, size := lastRune(s)
		s = s[:len(s)-size]
	}
	return strings.TrimSpace(s)
}

func lastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] < 0x80 || s[i] >= 0xC0 {
			return rune(s[i]), len(s) - i
		}
	}
	return 0, 1
}

// cleanVersion strips a leading "v" and returns "" for anything that is not
// semver.
func cleanVersion(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if !api.ValidVersion(v) {
		return ""
	}
	return v
}

// cleanResult copies an update result so that it validates: bad targets and
// error codes are dropped rather than failing the report.
func cleanResult(u *api.UpdateResult) *api.UpdateResult {
	if u == nil || u.Time.IsZero() {
		return nil
	}
	c := *u
	c.Time = c.Time.UTC().Truncate(time.Millisecond)
	c.Target = cleanVersion(c.Target)
	if c.Target == "" {
		return nil
	}
	if c.Success || !api.ValidErrorCode(c.ErrorCode) {
		c.ErrorCode = ""
	}
	c.Error = cleanError(c.Error, c.Success)
	c.Steps = cleanSteps(c.Steps)
	return &c
}

// cleanError is a failure's message as the proxy accepts it: printable,
// one line, at most api.MaxErrorLen bytes; empty on success.
func cleanError(msg string, success bool) string {
	if success {
		return ""
	}
	msg = strings.ToValidUTF8(termtext.Strip(msg), "")
	msg = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, msg)
	for len(msg) > api.MaxErrorLen {
		_, size := utf8.DecodeLastRuneInString(msg)
		msg = msg[:len(msg)-size]
	}
	return msg
}

// cleanSteps keeps the run log's steps the proxy accepts, at most
// api.MaxRunSteps.
func cleanSteps(steps []api.RunStep) []api.RunStep {
	var out []api.RunStep
	for _, st := range steps {
		if len(out) == api.MaxRunSteps {
			break
		}
		if api.ValidErrorCode(st.Name) && api.ValidErrorCode(st.Result) && st.DurationMS >= 0 {
			out = append(out, st)
		}
	}
	return out
}
