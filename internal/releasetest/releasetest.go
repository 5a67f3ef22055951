// Package releasetest builds the fake Teleport releases of the tests, the
// benchmarks and the demo, packed by fixture.Tarball and named by
// download.Artifact like a real one (teleport-v<ver>-linux-<arch>-bin.tar.gz
// with bin/teleport and bin/tctl). Two agents are on offer: the test agent
// (internal/testagent) compiled for a version and a behaviour, for tests
// that run the agent as a service; and a shell script, for tests that only
// need `teleport version` and no Go toolchain. Signing is left to package
// release.
package releasetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport-update/internal/fixture"
	"github.com/gravitational/teleport-update/internal/updater/download"
)

// AgentPackage is the import path of the test agent program.
const AgentPackage = "github.com/gravitational/teleport-update/internal/testagent"

// Modes of the test agent's "start" command.
const (
	ModeOK    = "ok"    // runs until SIGTERM
	ModeExit  = "exit"  // exits 1 at once
	ModeCrash = "crash" // exits 1 after CrashAfter (default 5s)
)

// DefaultCrashAfter is how long a ModeCrash agent runs before it crashes.
const DefaultCrashAfter = 5 * time.Second

// ErrInvalid is returned (wrapped) for a bad version, mode or architecture.
var ErrInvalid = errors.New("invalid test release")

var archPattern = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// Agent describes one test release.
type Agent struct {
	Version    string        // semver without a leading "v", e.g. "1.2.3"
	Mode       string        // ModeOK, ModeExit or ModeCrash
	CrashAfter time.Duration // for ModeCrash; default DefaultCrashAfter
	GOARCH     string        // default runtime.GOARCH (GOOS is always linux)
	// Flavour names the tarball as that build of Teleport (Enterprise,
	// FIPS); the agent inside is the same.
	Flavour download.Flavour
	// TeleportLayout packs the agent as Teleport's CDN does: under
	// teleport/ (teleport-ent/ for Enterprise) with ExampleUnit as
	// examples/systemd/teleport.service, the install script, README.md
	// and VERSION; otherwise flat, as bin/teleport and bin/tctl.
	TeleportLayout bool
	// Updater, when set, is the release's teleport-update (an
	// Updater.Build), packed next to teleport.
	Updater []byte
}

// MustArtifact returns the release artifact of Teleport version for
// linux/arch, whose TarballName is the file a CDN serves. It panics on a
// version or arch download.Artifact refuses: a bug in the caller.
func MustArtifact(version, arch string) download.Artifact {
	a, err := download.NewArtifact(download.ProductTeleport, version, "linux", arch)
	if err != nil {
		panic(fmt.Sprintf("releasetest: %v", err))
	}
	return a
}

// BinaryName returns the name of the bare agent binary Build leaves next to
// the tarball: teleport-<version>-<mode>.
func BinaryName(version, mode string) string {
	return fmt.Sprintf("teleport-%s-%s", version, mode)
}

// BuildAgent builds a release tarball of the test agent for version and mode
// into dir and returns its path; it fails the test on error.
func BuildAgent(t testing.TB, dir, version, mode string) (tarballPath string) {
	t.Helper()
	p, err := Build(t.Context(), dir, version, mode)
	if err != nil {
		t.Fatalf("Building test release %s (%s): %v", version, mode, err)
	}
	return p
}

// Build builds a release tarball of the test agent for version and mode into
// dir and returns its path. It runs "go build", so it needs the Go toolchain
// and this module's source tree.
func Build(ctx context.Context, dir, version, mode string) (string, error) {
	return Agent{Version: version, Mode: mode}.Build(ctx, dir)
}

// Build compiles the agent and packs it into dir under its artifact's
// TarballName: bin/teleport and bin/tctl (the same program), mode 0755, with
// fixed timestamps so equal inputs give equal tarballs. The bare binary is
// left in dir too, named BinaryName(version, mode).
func (a Agent) Build(ctx context.Context, dir string) (string, error) {
	if err := a.validate(); err != nil {
		return "", err
	}
	arch := a.GOARCH
	if arch == "" {
		arch = runtime.GOARCH
	}
	crash := a.CrashAfter
	if crash == 0 {
		crash = DefaultCrashAfter
	}
	bin := filepath.Join(dir, BinaryName(a.Version, a.Mode))
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.mode=%s -X main.crashAfter=%s", a.Version, a.Mode, crash)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, AgentPackage)
	cmd.Dir = moduleDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building test agent %s: %w: %s", a.Version, err, strings.TrimSpace(string(out)))
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("reading built test agent: %w", err)
	}
	art := MustArtifact(a.Version, arch)
	art.Edition, art.FIPS = a.Flavour.Edition(), a.Flavour.FIPS
	tarball := filepath.Join(dir, art.TarballName())
	if err := fixture.WriteTarball(tarball, a.files(exe)); err != nil {
		return "", fmt.Errorf("packing test release %s: %w", a.Version, err)
	}
	return tarball, nil
}

// files are the tarball's entries around the agent binary exe.
func (a Agent) files(exe []byte) map[string][]byte {
	if !a.TeleportLayout {
		files := map[string][]byte{"bin/teleport": exe, "bin/tctl": exe}
		if a.Updater != nil {
			files["bin/teleport-update"] = a.Updater
		}
		return files
	}
	top := "teleport"
	if a.Flavour.Enterprise || a.Flavour.FIPS {
		top = "teleport-ent"
	}
	files := teleportLayout(top, a.Version, exe, exe)
	if a.Updater != nil {
		files[top+"/teleport-update"] = a.Updater
	}
	return files
}

// teleportLayout is a release in Teleport's tarball layout under top:
// teleport and tctl, ExampleUnit as examples/systemd/teleport.service, the
// install script, README.md and VERSION.
func teleportLayout(top, version string, teleport, tctl []byte) map[string][]byte {
	return map[string][]byte{
		top + "/teleport": teleport,
		top + "/tctl":     tctl,
		top + "/install":  []byte("#!/bin/sh\necho 'not for the updater' >&2\nexit 1\n"),
		top + "/examples/systemd/teleport.service": []byte(ExampleUnit),
		top + "/README.md":                         []byte("Teleport " + version + "\n"),
		top + "/VERSION":                           []byte(version + "\n"),
	}
}

func (a Agent) validate() error {
	// The version goes into -ldflags and a file name: the strict parser
	// leaves nothing that could break out of either.
	if _, err := download.ParseVersion(a.Version); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	switch a.Mode {
	case ModeOK, ModeExit, ModeCrash:
	default:
		return fmt.Errorf("%w: mode %q (want %s, %s or %s)", ErrInvalid, a.Mode, ModeOK, ModeExit, ModeCrash)
	}
	if a.CrashAfter < 0 {
		return fmt.Errorf("%w: negative CrashAfter %v", ErrInvalid, a.CrashAfter)
	}
	if a.GOARCH != "" && !archPattern.MatchString(a.GOARCH) {
		return fmt.Errorf("%w: GOARCH %q", ErrInvalid, a.GOARCH)
	}
	return nil
}

// Script is a fake teleport as a shell script: `teleport version` prints
// "Teleport v<version> git:fixture go1.26"; `teleport start
// [--pid-file=PATH]` writes its PID there, prints "Teleport v<version>
// started (pid PID)" and sleeps. On SIGHUP it hands over as the test agent
// does: it starts the script it was started as (by the same path, so a
// moved link runs the new version), which writes the PID file, and exits
// (it has no sessions to finish). A broken one fails every command, so the
// updater refuses it before any restart.
func Script(version string, broken bool) string {
	if broken {
		return "#!/bin/sh\necho 'teleport: broken build' >&2\nexit 1\n"
	}
	return fmt.Sprintf(scriptAgent, version)
}

// scriptAgent is Script's agent; %[1]s is the version.
const scriptAgent = `#!/bin/sh
if [ "$1" = version ]; then echo 'Teleport v%[1]s git:fixture go1.26'; exit 0; fi
pidfile=
for a in "$@"; do
	case "$a" in --pid-file=*) pidfile="${a#--pid-file=}" ;; esac
done
sleep 3600 &
sleeper=$!
trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM INT
trap 'kill "$sleeper" 2>/dev/null; "$0" "$@" & exit 0' HUP
if [ -n "$pidfile" ]; then echo "$$" >"$pidfile.tmp" && mv -f "$pidfile.tmp" "$pidfile"; fi
echo "Teleport v%[1]s started (pid $$)"
wait "$sleeper"
`

// ScriptRelease returns the tarball of a release of the Script agent, with
// bin/teleport and bin/tctl.
func ScriptRelease(version string, broken bool) ([]byte, error) {
	return fixture.Tarball(map[string][]byte{
		"bin/teleport": []byte(Script(version, broken)),
		"bin/tctl":     []byte("#!/bin/sh\necho tctl\n"),
	})
}

// ExampleUnit is the examples/systemd/teleport.service of the releases in
// Teleport's layout: Teleport's own example unit, plus one setting that
// tests look for to tell a unit rendered from the release's example from
// the built-in one (the same in every version, so a switch between two
// of them changes nothing in [Service]).
const ExampleUnit = `[Unit]
Description=Teleport Service
After=network.target

[Service]
Type=simple
Restart=always
RestartSec=5
EnvironmentFile=-/etc/default/teleport
ExecStart=/usr/local/bin/teleport start --config /etc/teleport.yaml --pid-file=/run/teleport.pid
# systemd before 239 needs an absolute path
ExecReload=/bin/sh -c "exec pkill -HUP -L -F /run/teleport.pid"
PIDFile=/run/teleport.pid
LimitNOFILE=524288
` + ExampleUnitMarker + `

[Install]
WantedBy=multi-user.target
`

// ExampleUnitMarker is the setting ExampleUnit adds to Teleport's example.
const ExampleUnitMarker = "Environment=TELEPORT_UNIT_FROM_RELEASE=1"

// TeleportLayoutRelease is ScriptRelease in Teleport's own tarball layout:
// everything under top ("teleport" or "teleport-ent"), the binaries at its
// root, plus the install script, examples and docs the updater skips or
// keeps in share/.
func TeleportLayoutRelease(top, version string, broken bool) ([]byte, error) {
	return fixture.Tarball(teleportLayout(top, version, []byte(Script(version, broken)), []byte("#!/bin/sh\necho tctl\n")))
}

// moduleDir returns the root of this module's source tree (where go.mod
// is), found from this file's location, or "" (the current directory) when
// the source is not where it was compiled (e.g. a -trimpath build).
func moduleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return ""
	}
	return dir
}
