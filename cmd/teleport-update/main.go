// Command teleport-update installs, updates and rolls back the Teleport agent
// from signed releases, serves the proxy-side update API, and signs releases.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gravitational/teleport-update/internal/termtext"
	"github.com/gravitational/teleport-update/internal/updater"
	"github.com/gravitational/teleport-update/internal/updater/install"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes shared by every command.
const (
	exitOK      = 0 // the host ends in the intended state
	exitFailure = 1 // refused or failed; the reason is on stderr
	exitUsage   = 2 // bad flags or arguments
)

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks an error as a usage problem (exit 2).
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// cli holds what every command shares.
type cli struct {
	root      string // filesystem root, "/" in production
	debug     bool
	logFormat string // text or json
	stdout    io.Writer
	stderr    io.Writer
	// connectSystemd connects to the host's systemd. Commands reach it
	// only through hostSystemd, which keeps it away from any --root
	// other than "/".
	connectSystemd updater.SystemdFunc
	// getenv reads the environment; nil means os.Getenv.
	getenv func(string) string
}

// env returns the environment variable key.
func (c *cli) env(key string) string {
	if c.getenv == nil {
		return os.Getenv(key)
	}
	return c.getenv(key)
}

// hostSystemd returns how this run reaches systemd: nil (no systemd)
// unless --root is "/". Under another root the unit files written are not
// the ones the host's systemd runs, so starting, stopping or disabling
// units there would act on the host's own agent instead.
func (c *cli) hostSystemd() updater.SystemdFunc {
	if filepath.Clean(c.root) != "/" {
		return nil
	}
	return c.connectSystemd
}

// Log formats of --log-format.
const (
	logFormatText = "text"
	logFormatJSON = "json"
)

// logger returns the structured logger for this run on stderr: plain slog
// text lines (no escape codes), or one JSON object a line with
// --log-format json; debug level with --debug.
func (c *cli) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if c.debug {
		opts.Level = slog.LevelDebug
	}
	if c.logFormat == logFormatJSON {
		return slog.New(slog.NewJSONHandler(c.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(c.stderr, opts))
}

// Run executes teleport-update with args and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return (&cli{stdout: stdout, stderr: stderr, connectSystemd: install.NewDBus}).run(ctx, args)
}

// run executes the command line args with c's settings.
func (c *cli) run(ctx context.Context, args []string) int {
	stdout, stderr := c.stdout, c.stderr
	root := &cobra.Command{
		Use:   "teleport-update",
		Short: "Secure auto-updater for the Teleport agent",
		Long: `teleport-update keeps the Teleport agent on the version its proxy asks for,
inside the group's maintenance window, installing only releases whose SHA-256
and Sigstore signature verify against pinned keys.

Exit codes: 0 when the host ends in the intended state (including "nothing to
do" and "window closed"), 1 when something was refused or failed (the reason
is printed on stderr), 2 for usage errors.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&c.root, "root", "/", "filesystem root to operate under (tests and demos)")
	root.PersistentFlags().BoolVarP(&c.debug, "debug", "d", false, "verbose logging")
	root.PersistentFlags().StringVar(&c.logFormat, "log-format", logFormatText, "log format on stderr: text or json")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if c.logFormat != logFormatText && c.logFormat != logFormatJSON {
			return usageError("--log-format %q: want text or json", c.logFormat)
		}
		return nil
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(
		newInstallCmd(c), newUpdateCmd(c), newStatusCmd(c), newEnableCmd(c), newDisableCmd(c),
		newPinCmd(c), newUnpinCmd(c), newRollbackCmd(c), newUninstallCmd(c), newVersionCmd(c),
		newCensusCmd(c), newProxyCmd(c), newReleaseCmd(c), newManCmd(c),
		newSetupCmd(c), newLinkPackageCmd(c), newUnlinkPackageCmd(c),
	)

	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	// The reason may quote what a proxy, a CDN or systemd said.
	fmt.Fprintf(stderr, "teleport-update: %s\n", termtext.Strip(err.Error()))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isCobraUsageError(err) {
		return exitUsage
	}
	return exitFailure
}

// isCobraUsageError recognises the errors cobra returns for unknown
// commands and wrong argument counts (it has no typed errors for them).
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires at most", "invalid argument"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// writeJSON writes v to w as indented JSON, as the --json flags print.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
