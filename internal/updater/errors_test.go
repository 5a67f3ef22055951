package updater

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gravitational/teleport-update/internal/updater/download"
	"github.com/gravitational/teleport-update/internal/updater/install"
	"github.com/gravitational/teleport-update/internal/updater/verify"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	const keeps = "the agent keeps running 1.0.0"
	const retry = keeps + "; the timer will retry"
	unhealthy := fmt.Errorf("health check of teleport.service: %w: unit is failed", install.ErrUnhealthy)
	for _, tc := range []struct {
		name    string
		err     error
		running string
		want    Class
	}{
		{"nil", nil, "1.0.0", Class{}},
		{"not installed", ErrNotInstalled, "", Class{CodeOther, "run `teleport-update install --proxy HOST` first"}},
		{"locked", fmt.Errorf("x: %w", install.ErrLocked), "1.0.0", Class{CodeOther, "try again when it finishes"}},
		{"verification", fmt.Errorf("fetch x: %w", download.ErrChecksumMismatch), "1.0.0", Class{CodeVerification, "nothing was installed; " + keeps}},
		{"rolled back", fmt.Errorf("%w to 1.0.0: %w", ErrRolledBack, unhealthy), "1.0.0", Class{CodeHealthCheck, "the failed version is skipped until an admin runs install --version or pin --version"}},
		{"health, first install", fmt.Errorf("%w: 1.0.0: %w", ErrHealth, unhealthy), "", Class{CodeHealthCheck, ""}},
		// A shutdown excused the failed health check: not the version's fault.
		{"switch excused by a shutdown", fmt.Errorf("%w: %w", ErrSwitch, unhealthy), "1.0.0", Class{CodeSwitch, retry}},
		{"switch interrupted", fmt.Errorf("%w: %w", ErrSwitch, context.Canceled), "1.0.0", Class{CodeSwitch, retry}},
		{"not healthy either", fmt.Errorf("went back: %w", unhealthy), "1.0.0", Class{CodeHealthCheck, ""}},
		{"proxy", fmt.Errorf("%w: asking: %w", ErrProxy, &download.HTTPStatusError{Code: 503}), "1.0.0", Class{CodeProxy, retry}},
		{"proxy, nothing runs", fmt.Errorf("%w: x", ErrProxy), "", Class{CodeProxy, "the agent keeps running nothing; run install again once the cause is fixed"}},
		{"proxy interrupted", fmt.Errorf("%w: %w", ErrProxy, context.Canceled), "1.0.0", Class{CodeProxy, retry}},
		{"downgrade", fmt.Errorf("%w: x", ErrDowngrade), "1.0.0", Class{CodeDowngrade, ""}},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), "1.0.0", Class{CodeInterrupted, keeps}},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), "1.0.0", Class{CodeInterrupted, keeps}},
		{"http status", fmt.Errorf("fetch: %w", &download.HTTPStatusError{Code: 404}), "1.0.0", Class{CodeDownload, retry}},
		{"stalled", fmt.Errorf("fetch: %w", download.ErrStalled), "1.0.0", Class{CodeDownload, retry}},
		{"too large", download.ErrTooLarge, "1.0.0", Class{CodeDownload, retry}},
		{"too slow", download.ErrTooSlow, "1.0.0", Class{CodeDownload, retry}},
		{"redirect", download.ErrRedirectRefused, "1.0.0", Class{CodeDownload, retry}},
		{"insecure", download.ErrInsecureURL, "1.0.0", Class{CodeDownload, retry}},
		{"skipped", fmt.Errorf("%w: x", ErrSkipped), "1.0.0", Class{CodeOther, ""}},
		{"other", errors.New("disk on fire"), "1.0.0", Class{CodeOther, ""}},
		{"verification before download", errors.Join(download.ErrStalled, verify.ErrVerification), "1.0.0", Class{CodeVerification, "nothing was installed; " + keeps}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tc.err, tc.running); got != tc.want {
				t.Errorf("Classify(%v, %q) = %+v, want %+v", tc.err, tc.running, got, tc.want)
			}
		})
	}
}
