package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gravitational/teleport-update/internal/atomicfile"
	"github.com/gravitational/teleport-update/internal/capread"
	"github.com/gravitational/teleport-update/internal/census"
	"github.com/gravitational/teleport-update/internal/keys"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.0.0-dev"

// interactiveLockWait is how long interactive commands wait for another
// teleport-update run; the timer's update waits as long as it takes.
const interactiveLockWait = 30 * time.Second

// maxSelfSize bounds the executable installSelf copies (and the copy it
// compares with); teleport-update is a few tens of megabytes.
const maxSelfSize = 512 << 20

// agentFlags are the flags shared by the commands that switch versions.
type agentFlags struct {
	healthWindow time.Duration
	healthMax    time.Duration
	maxSize      int64
}

func (f *agentFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&f.healthWindow, "health-window", 10*time.Second, "how long the new version must stay up (stable PID, no restarts) to count as healthy")
	cmd.Flags().DurationVar(&f.healthMax, "health-timeout", 60*time.Second, "give up on the health check after this long")
	cmd.Flags().Int64Var(&f.maxSize, "max-download-size", download.DefaultMaxArtifactSize, "largest release tarball accepted, in bytes")
}

// afterStep is set by a build-tagged test hook to kill the process at a step.
var afterStep func(updater.Step)

// setupCheck is set by a build-tagged test hook to make setup fail, as a
// broken new updater's would.
var setupCheck func() error

// newUpdater wires the updater for this host from the CLI settings. The
// find requests, the downloads and the census report share one HTTP
// client, so the report reuses the connection to the proxy.
func (c *cli) newUpdater(f *agentFlags, lockWait time.Duration) *updater.Updater {
	log := c.logger()
	hc := newHTTPClient()
	u := &updater.Updater{
		Tree:         install.New(c.root),
		HTTP:         download.New(download.Options{HTTPClient: hc, Logger: log}),
		Log:          log,
		EmbeddedKeys: keys.FS,
		Systemd:      c.hostSystemd(),
		Limits:       install.DefaultLimits,
		Units: install.UnitOptions{
			UpdaterPath:    "/" + updater.UpdaterBinPath,
			UpdaterVersion: unitVersion(),
		},
		LockWait:    lockWait,
		AfterStep:   afterStep,
		Reporter:    &censusReporter{root: c.root, client: hc, log: log},
		SelfVersion: version,
		InstallSelf: func() error { return installSelf(c.root) },
		SetupCheck:  setupCheck,
	}
	if f != nil {
		u.Health = install.HealthOptions{Window: f.healthWindow, Max: f.healthMax}
		u.MaxArtifactSize = f.maxSize
	}
	if isTerminal(c.stderr) {
		u.Progress = newProgressBar(c.stderr)
	}
	return u
}

// unitVersion is this build's version as the units name it, "" when it is
// not a version a unit may carry.
func unitVersion() string {
	if install.ValidateVersion(version) != nil {
		return ""
	}
	return version
}

// newHTTPClient is the agent's HTTP client: the system certificate pool
// (so SSL_CERT_FILE works), the proxy from the environment, TLS 1.2 or
// newer.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgressBar draws a one-line progress bar on a terminal.
func newProgressBar(w io.Writer) func(done, total int64) {
	var last time.Time
	return func(done, total int64) {
		now := time.Now()
		finished := total > 0 && done >= total
		if !finished && now.Sub(last) < 100*time.Millisecond {
			return
		}
		last = now
		if total <= 0 {
			fmt.Fprintf(w, "\rDownloading: %s", humanBytes(done))
			return
		}
		const width = 30
		n := int(done * width / total)
		fmt.Fprintf(w, "\rDownloading: [%s%s] %3d%% %s / %s", strings.Repeat("=", n), strings.Repeat(" ", width-n), done*100/total, humanBytes(done), humanBytes(total))
		if finished {
			fmt.Fprintln(w)
		}
	}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// explain adds to an updater error what happens next, as
// updater.Classify says. running is the version that keeps running, ""
// for none.
func explain(err error, running string) error {
	c := updater.Classify(err, running)
	switch {
	case c.Next == "":
		return err
	case c.Code == updater.CodeInterrupted:
		return fmt.Errorf("interrupted (%w); %s", err, c.Next)
	}
	return fmt.Errorf("%w; %s", err, c.Next)
}

func newInstallCmd(c *cli) *cobra.Command {
	var s settingFlags
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "install --proxy HOST[:PORT]",
		Short: "Install the agent and the update timer",
		Long: `Install asks the proxy which version this host's group runs (or takes
--version), downloads and verifies it, installs it under
/var/lib/teleport-update/versions, links its binaries into /usr/local/bin, writes the
systemd units, starts the agent and enables the update timer. The agent is
left stopped, with the next steps printed, when /etc/teleport.yaml does not
exist or when an agent unit was already there, neither running nor enabled.

Re-running install with new flags changes the settings; settings are saved only
when the install succeeds. Installing a version takes it off the skip list.
Without --version, a re-install moves the host only as the timer would: a
disabled host stays where it is, a pinned host stays at its pin, and a host
that follows the proxy moves only inside its window and without jitter.

Install takes the build the proxy serves (edition community or ent, FIPS or
not; also with --version). A host on another build is switched to it at once:
this is the only way a host changes builds.

A flag that is absent is taken from the environment: TELEPORT_PROXY,
TELEPORT_UPDATE_GROUP, TELEPORT_UPDATE_VERSION, TELEPORT_CDN_BASE_URL,
TELEPORT_UPDATE_TOKEN. Without a proxy, the one /etc/teleport.yaml names
(proxy_server, or the first of auth_servers) is used.

Exit codes: 0 installed and healthy; 1 refused or failed (reason on stderr);
2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.install(cmd, &s, &f)
		},
	}
	s.register(cmd)
	f.register(cmd)
	return cmd
}

// install runs install with the settings s and f give: the request from
// flags, environment and teleport.yaml, the install itself, and the copy
// of teleport-update the timer runs.
func (c *cli) install(cmd *cobra.Command, s *settingFlags, f *agentFlags) error {
	u := c.newUpdater(f, interactiveLockWait)
	cur, _, err := u.ReadConfig()
	hasProxy := err == nil && cur != nil && cur.Spec.Proxy != ""
	req, err := s.request(c, cmd, hasProxy, u.Log)
	if err != nil {
		return err
	}
	req.InstallMethods = census.InstallMethodsFromEnv(os.Environ())
	var held string
	u.AgentHeld = func(reason string) { held = reason }
	cfg, err := u.Install(cmd.Context(), req)
	if errors.Is(err, updater.ErrProxyRequired) {
		return usageError("%v (or set %s, or proxy_server in /etc/teleport.yaml)", err, envProxy)
	}
	if err != nil {
		return explain(err, activeOf(cfg))
	}
	fmt.Fprintf(c.stdout, "Installed Teleport %s (proxy %s, group %q).\n", cfg.Status.Active, cfg.Spec.Proxy, cfg.Spec.Group)
	if held != "" {
		printNextSteps(c.stdout, held, cfg.Spec.Proxy)
	}
	return nil
}

// printNextSteps tells the admin how to start an agent the install left
// stopped, for the reason held.
func printNextSteps(w io.Writer, held, proxy string) {
	fmt.Fprintf(w, "The agent was not started: %s.\nNext steps:\n", held)
	n := 1
	if held == updater.HeldNoConfig {
		fmt.Fprintf(w, "  %d. Write /etc/teleport.yaml, for example with:\n"+
			"       teleport node configure --proxy=%s --token=<join token> --output=file:///etc/teleport.yaml\n", n, proxy)
		n++
	}
	fmt.Fprintf(w, "  %d. Start the agent and enable it at boot:\n       systemctl enable --now teleport\n", n)
	fmt.Fprintln(w, "The update timer keeps the installed version current meanwhile; it does not start the agent.")
}

// selfExe is the running executable as the kernel sees it. Opening it
// reaches the file this process was started from even when the path it was
// started by now names another file (or none), so what gets copied is what
// is running, never what someone put at that path since.
const selfExe = "/proc/self/exe"

// installSelf copies the running executable to <root>/usr/local/bin/teleport-update
// (atomically), unless that file already holds it. Both are streamed, never
// held in memory: the install's peak memory stays that of the download.
func installSelf(root string) error {
	src, err := os.Open(selfExe)
	if err != nil {
		return fmt.Errorf("reading the running executable: %w", err)
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil || fi.Size() > maxSelfSize {
		return fmt.Errorf("reading the running executable: %w (size over %d bytes?)", errors.Join(err, capread.ErrTooLarge), maxSelfSize)
	}
	dst := filepath.Join(root, updater.UpdaterBinPath)
	if sameContent(src, dst) {
		return nil
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("reading the running executable: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFrom(dst, io.LimitReader(src, maxSelfSize), 0o755)
}

// sameContent reports whether the file at path holds exactly what r yields
// to its end.
func sameContent(r io.Reader, path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, errA := io.ReadFull(r, a)
		m, errB := io.ReadFull(f, b)
		if n != m || !bytes.Equal(a[:n], b[:m]) || errA != errB {
			return false
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			return true
		}
		if errA != nil {
			return false
		}
	}
}

func newUpdateCmd(c *cli) *cobra.Command {
	var now bool
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "update [--now]",
		Short: "Update the agent if the proxy says so (the timer runs this)",
		Long: `Update asks the proxy for this host's group's target version and window.
It does nothing unless the window is open (or --now), sleeps a random jitter,
then downloads, verifies, installs and switches to the target; if the new
version fails its health check it rolls back and skips that version.

A disabled host never updates and contacts nobody: not the proxy, not the
CDN, and it sends no census report unless reporting was turned on with
census --enable. A pinned host never follows the proxy. A host never changes
builds on its own: when the proxy serves another edition or FIPS setting,
update refuses (exit 1, error code flavour) until an admin runs install. The
timer's run waits for a concurrent run to finish.

Exit codes: 0 when the host ends in the intended state (updated, up to date,
window closed, disabled, pinned); 1 when something was refused or failed,
including a rollback; 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lockWait := time.Duration(-1)
			if now {
				lockWait = interactiveLockWait
			}
			u := c.newUpdater(&f, lockWait)
			c.logCensusNotice(u)
			res, err := u.Update(cmd.Context(), now)
			if err != nil {
				return explain(err, res.From)
			}
			switch {
			case res.Outcome == updater.OutcomeUpdated:
				fmt.Fprintf(c.stdout, "Updated Teleport from %s to %s.\n", orNone(res.From), res.Target)
			case res.Hold != "":
				fmt.Fprintf(c.stdout, "The proxy's rollout holds this host at %s (%s); running %s.\n", res.Target, res.Hold, orNone(res.From))
			case res.Outcome == updater.OutcomeWindowClosed:
				fmt.Fprintf(c.stdout, "Maintenance window is closed; staying on %s (target %s).\n", orNone(res.From), res.Target)
			default:
				fmt.Fprintf(c.stdout, "Nothing to do (%s); running %s.\n", res.Outcome, orNone(res.From))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&now, "now", false, "update now, even outside the maintenance window, without jitter")
	f.register(cmd)
	return cmd
}

// activeOf is the active version cfg records, "" without one.
func activeOf(cfg *updater.Config) string {
	if cfg == nil {
		return ""
	}
	return cfg.Status.Active
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func newStatusCmd(c *cli) *cobra.Command {
	var asJSON, offline bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show versions, settings, the proxy's target and the last update",
		Long: `Status prints the host's update settings and state and asks the proxy for
the current target and window (skip that with --offline).

Exit codes: 0 shown; 1 not installed or update.yaml unreadable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u := c.newUpdater(nil, 0)
			st, err := u.Status(cmd.Context(), !offline)
			if err != nil {
				return explain(err, "")
			}
			if asJSON {
				return writeJSON(c.stdout, st)
			}
			printStatus(c.stdout, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (a stable interface for scripts)")
	cmd.Flags().BoolVar(&offline, "offline", false, "do not ask the proxy")
	return cmd
}

func printStatus(w io.Writer, st *updater.StatusReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	base := st.BaseURL
	if base == "" {
		base = download.DefaultBaseURL + " (built-in)"
	}
	row("Proxy", st.Proxy)
	row("Group", orDefault(st.Group, "(default)"))
	row("Base URL", base)
	row("Enabled", yesNo(st.Enabled))
	pinned := yesNo(st.Pinned)
	if st.Pinned && st.PinnedVersion != "" {
		pinned += " (" + st.PinnedVersion + ")"
	}
	row("Pinned", pinned)
	row("Active", orNone(st.Active))
	row("Build", buildName(st.Edition, st.FIPS))
	row("Backup", orNone(st.Backup))
	row("Skipped", orDefault(strings.Join(st.Skip, ", "), "none"))
	if st.ProxyError != "" {
		row("Proxy target", "unknown: "+st.ProxyError)
	} else if st.Target != "" {
		row("Proxy target", st.Target)
		if proxy := buildName(st.TargetEdition, st.TargetFIPS); proxy != buildName(st.Edition, st.FIPS) {
			row("Proxy build", proxy+" (differs: update refuses until an admin runs install)")
		}
		window := "closed"
		if st.WindowOpen {
			window = "open"
		}
		if st.NextWindow != nil {
			window += fmt.Sprintf(" (window %s – %s)", st.NextWindow.Start.UTC().Format(time.RFC3339), st.NextWindow.End.UTC().Format(time.RFC3339))
		}
		row("Window", window)
		if st.TargetHold != "" {
			row("Rollout", "holds this host: "+st.TargetHold)
		}
	}
	if lu := st.LastUpdate; lu != nil {
		res := "succeeded"
		if !lu.Success {
			res = "failed: " + lu.Error
		}
		row("Last update", fmt.Sprintf("%s to %s %s", lu.Time.UTC().Format(time.RFC3339), lu.Target, res))
	} else {
		row("Last update", "never")
	}
	row("Census", map[bool]string{true: "on", false: "off"}[st.Census])
	printUpdaterStatus(row, st)
	tw.Flush()
}

// printUpdaterStatus prints what status says about the updater itself and
// how Teleport is installed.
func printUpdaterStatus(row func(k, v string), st *updater.StatusReport) {
	self := orDefault(st.UpdaterVersion, "unknown")
	if st.RunningUpdaterVersion != "" && st.RunningUpdaterVersion != st.UpdaterVersion {
		self += " (this command: " + st.RunningUpdaterVersion + ")"
	}
	row("Updater", self)
	if st.SelfUpdating {
		row("Self-update", "interrupted; the next run finishes it")
	} else if l := st.LastSelfUpdate; l != nil {
		res := "succeeded"
		if !l.Success {
			res = "failed (" + l.ErrorCode + "): " + l.Error
		}
		row("Self-update", fmt.Sprintf("%s %s to %s %s", l.Time.UTC().Format(time.RFC3339), l.From, l.To, res))
	}
	row("Install", installName(st.Install))
}

// installName explains StatusReport.Install.
func installName(kind string) string {
	switch kind {
	case updater.InstallManaged:
		return "managed (teleport-update)"
	case updater.InstallPackage:
		return "package (.deb/.rpm; not managed by teleport-update)"
	case updater.InstallBoth:
		return "both: managed by teleport-update, and a package install"
	}
	return "none"
}

// buildName names a build for people: community, Enterprise or
// Enterprise FIPS.
func buildName(edition string, fips bool) string {
	f, err := download.NewFlavour(edition, fips)
	if err != nil {
		return edition
	}
	return f.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// newSettingCmd builds a command that changes one setting in update.yaml
// and prints done on success.
func newSettingCmd(c *cli, use, short, long, done string, change func(context.Context, *updater.Updater) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long + "\n\nExit codes: 0 done; 1 failed.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := change(cmd.Context(), c.newUpdater(nil, interactiveLockWait)); err != nil {
				return explain(err, "")
			}
			fmt.Fprintln(c.stdout, done)
			return nil
		},
	}
}

func newEnableCmd(c *cli) *cobra.Command {
	var s settingFlags
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "enable [--proxy HOST[:PORT]] [--group G] [--base-url URL]",
		Short: "Turn automatic updates on (starts the timer); on a new host, install",
		Long: `Enable turns automatic updates back on and starts the timer.

On a host that is not installed yet (no update.yaml), enable is install: it takes the same
flags and environment variables, and reads the proxy from /etc/teleport.yaml
when none is given, as Teleport's own teleport-update enable does. On an
installed host, settings given (flags or environment) are saved as install
saves them, then the timer is turned on.

Exit codes: 0 done; 1 failed; 2 usage error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u := c.newUpdater(&f, interactiveLockWait)
			if _, exists, err := u.ReadConfig(); err == nil && !exists {
				return c.install(cmd, &s, &f)
			}
			if s.given(c, cmd) {
				if err := c.install(cmd, &s, &f); err != nil {
					return err
				}
			}
			if _, err := u.SetEnabled(cmd.Context(), true); err != nil {
				return explain(err, "")
			}
			fmt.Fprintln(c.stdout, "Automatic updates enabled.")
			return nil
		},
	}
	s.register(cmd)
	f.register(cmd)
	return cmd
}

func newDisableCmd(c *cli) *cobra.Command {
	return newSettingCmd(c, "disable", "Turn automatic updates off (stops the timer)",
		"Disable stops the timer; a disabled host never updates and contacts nobody (no census report either, unless census --enable turned it on explicitly).", "Automatic updates disabled.",
		func(ctx context.Context, u *updater.Updater) error { _, err := u.SetEnabled(ctx, false); return err })
}

func newUnpinCmd(c *cli) *cobra.Command {
	return newSettingCmd(c, "unpin", "Follow the proxy's target again",
		"Unpin lets the next update run follow the proxy again.", "Unpinned; the host follows the proxy again.",
		func(ctx context.Context, u *updater.Updater) error { _, err := u.Unpin(ctx); return err })
}

func newPinCmd(c *cli) *cobra.Command {
	var ver string
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "pin [--version V]",
		Short: "Hold the agent at a version (installing it if needed)",
		Long: `Pin holds this host at --version (or the active version): the host stops
following the proxy. Pinning a version installs it if needed (downgrades
included) and takes it off the skip list.

Exit codes: 0 pinned; 1 failed (the previous version keeps running).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.newUpdater(&f, interactiveLockWait).Pin(cmd.Context(), ver)
			if err != nil {
				return explain(err, activeOf(cfg))
			}
			fmt.Fprintf(c.stdout, "Pinned to %s.\n", cfg.Spec.PinnedVersion)
			return nil
		},
	}
	cmd.Flags().StringVar(&ver, "version", "", "version to pin (default: the active version)")
	f.register(cmd)
	return cmd
}

func newRollbackCmd(c *cli) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Switch to the backup version now",
		Long: `Rollback switches to the backup version with a health check. The version
rolled back from is skipped, so the timer does not reinstall it until an
admin runs install --version or pin --version.

Exit codes: 0 rolled back and healthy; 1 failed or no backup.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.newUpdater(&f, interactiveLockWait).Rollback(cmd.Context())
			if err != nil {
				return explain(err, activeOf(cfg))
			}
			fmt.Fprintf(c.stdout, "Rolled back to %s.\n", cfg.Status.Active)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newUninstallCmd(c *cli) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "uninstall [--force]",
		Short: "Remove units, links, versions and update.yaml (the agent's data stays)",
		Long: `Uninstall stops the agent and the timer and removes everything teleport-update put on the host,
except the agent's data directory. It lists what it removed.

While the agent is active or enabled, uninstall refuses unless --force is
given. A teleport.service of your own that install --overwrite replaced is put
back. When a package install of Teleport is present (/usr/bin/teleport and its
unit in /lib/systemd/system), the host is handed back to it: its unit is
enabled and started as ours was.

Exit codes: 0 removed; 1 refused or failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			removed, err := c.newUpdater(nil, interactiveLockWait).Uninstall(cmd.Context(), force)
			for _, r := range removed {
				fmt.Fprintf(c.stdout, "Removed %s\n", r)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, "Uninstalled; the agent's data directory was kept.")
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "uninstall even while the agent is active or enabled (it is stopped)")
	return cmd
}

func newVersionCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of teleport-update",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintf(c.stdout, "teleport-update v%s %s/%s %s\n", version, runtime.GOOS, runtime.GOARCH, runtime.Version())
		},
	}
}
