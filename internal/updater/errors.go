// This file holds the updater's errors: the sentinels callers decide on,
// and Classify, the one classifier that says what an error means (a code
// for the census and status, and what happens next for an admin). The CLI
// only formats what Classify says.

package updater

import (
	"context"
	"errors"

	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

// Sentinel outcomes callers map to messages and exit codes.
var (
	// ErrNotInstalled: update.yaml has no proxy; run install first.
	ErrNotInstalled = errors.New("teleport-update is not installed on this host")
	// ErrProxyRequired: a first install was asked for without a proxy.
	ErrProxyRequired = errors.New("--proxy HOST[:PORT] is required on a first install")
	// ErrRolledBack: the new version failed its health check and the host
	// went back to the previous version.
	ErrRolledBack = errors.New("rolled back")
	// ErrDowngrade: the proxy asked for a downgrade this host may not take.
	ErrDowngrade = errors.New("downgrade refused")
	// ErrSkipped: the requested version is on the skip list.
	ErrSkipped = errors.New("version is skip-listed")
	// ErrNoBackup: rollback was asked for but there is no backup version.
	ErrNoBackup = errors.New("no backup version to roll back to")
	// ErrHealth: the version failed its health check and no previous
	// version was there to go back to.
	ErrHealth = errors.New("health check failed")
	// ErrFlavour: the proxy serves another build (edition or FIPS) than the
	// host runs, or a version is installed here as another build. A host
	// never switches builds on its own; an admin's install does.
	ErrFlavour = errors.New("build flavour differs")
	// ErrSwitch: a switch did not complete for a reason that is not the
	// version's fault (interrupted, systemd failed); the host went back and
	// the version is not skip-listed.
	ErrSwitch = errors.New("switch did not complete")
)

// Error codes: one machine-readable word per kind of failure, recorded in
// update.yaml's last_update.error_code and sent in the census.
const (
	CodeVerification = "verification" // a signature or checksum did not verify
	CodeHealthCheck  = "health_check" // the version failed its health check
	CodeSwitch       = "switch"       // a switch did not complete, not the version's fault
	CodeProxy        = "proxy"        // no usable answer from the proxy
	CodeDowngrade    = "downgrade"    // the proxy asked for a refused downgrade
	CodeInterrupted  = "interrupted"  // the run was stopped or timed out
	CodeDownload     = "download"     // the CDN could not deliver the release
	CodeFlavour      = "flavour"      // the proxy serves another edition or FIPS setting
	CodeOther        = "other"        // anything else
)

// Class says what an error means for the host.
type Class struct {
	// Code is one of the Code constants; "" for no error.
	Code string
	// Next says what happens next, for an admin reading the error; ""
	// when the error says it all.
	Next string
}

// Classify says what err means. running is the version the agent keeps
// running, "" for none. The first matching rule wins:
//   - ErrNotInstalled, install.ErrLocked: other, with what to do.
//   - verify.ErrVerification: verification; nothing was installed.
//   - ErrRolledBack: health_check; the version is skipped from now on.
//   - ErrHealth: health_check.
//   - ErrSwitch: switch (even when a health check failed, since a
//     shutdown excused it); the timer retries.
//   - install.ErrUnhealthy: health_check.
//   - ErrProxy: proxy; the timer retries.
//   - ErrDowngrade: downgrade.
//   - ErrFlavour: flavour; nothing changes until an admin runs install.
//   - context.Canceled, context.DeadlineExceeded: interrupted.
//   - download failures (an HTTP status, a stalled, slow, oversized or
//     redirected transfer): download; the timer retries.
//   - anything else: other.
func Classify(err error, running string) Class {
	keeps := "the agent keeps running " + orNothing(running)
	retry := keeps + "; the timer will retry"
	if running == "" {
		retry = keeps + "; run install again once the cause is fixed"
	}
	switch {
	case err == nil:
		return Class{}
	case errors.Is(err, ErrNotInstalled):
		return Class{CodeOther, "run `teleport-update install --proxy HOST` first"}
	case errors.Is(err, install.ErrLocked):
		return Class{CodeOther, "try again when it finishes"}
	case errors.Is(err, verify.ErrVerification):
		return Class{CodeVerification, "nothing was installed; " + keeps}
	case errors.Is(err, ErrRolledBack):
		return Class{CodeHealthCheck, "the failed version is skipped until an admin runs install --version or pin --version"}
	case errors.Is(err, ErrHealth):
		return Class{CodeHealthCheck, ""}
	case errors.Is(err, ErrSwitch):
		return Class{CodeSwitch, retry}
	}
	return classifyCause(err, keeps, retry)
}

// classifyCause is Classify for errors that are not an outcome of the
// updater's own: the cause it met.
func classifyCause(err error, keeps, retry string) Class {
	var hs *download.HTTPStatusError
	switch {
	case errors.Is(err, install.ErrUnhealthy):
		return Class{CodeHealthCheck, ""}
	case errors.Is(err, ErrProxy):
		return Class{CodeProxy, retry}
	case errors.Is(err, ErrDowngrade):
		return Class{CodeDowngrade, ""}
	case errors.Is(err, ErrFlavour):
		return Class{CodeFlavour, keeps + "; this host does not change builds until an admin runs `teleport-update install`"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Class{CodeInterrupted, keeps}
	case errors.As(err, &hs), errors.Is(err, download.ErrStalled), errors.Is(err, download.ErrTooLarge),
		errors.Is(err, download.ErrTooSlow), errors.Is(err, download.ErrRedirectRefused), errors.Is(err, download.ErrInsecureURL):
		return Class{CodeDownload, retry}
	}
	return Class{Code: CodeOther}
}

func orNothing(v string) string {
	if v == "" {
		return "nothing"
	}
	return v
}

// oneLine makes s one line of at most 1000 bytes, for update.yaml.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	if len(b) > 1000 {
		return string(b[:1000]) + "…"
	}
	return string(b)
}
